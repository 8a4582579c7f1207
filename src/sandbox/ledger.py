"""The ledger: how many times each recipient of each alert was accepted (code 1000).

Duplicates in it are what exactly-once delivery is measured by.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

# how many recipients accepted more than once a ledger lists by number
LISTED_DUPLICATES = 100


@dataclass(slots=True)
class AlertLedger:
    """Acceptances of one alert's recipients."""

    alert_id: str
    counts: Counter[str] = field(default_factory=Counter)
    acceptances: int = 0
    requests: int = 0
    duplicate_recipients: list[str] = field(default_factory=list)
    first_accepted_at: float | None = None
    last_accepted_at: float | None = None

    def accept(self, recipients: Sequence[str], when: float) -> None:
        """Count one acceptance of each of `recipients` at unix time `when`."""
        if not recipients:
            return
        counts = self.counts
        known = len(counts)
        # counted in C (`Counter.update`): the ledger is most of a send's cost at the sandbox
        counts.update(recipients)
        if len(counts) - known != len(recipients):
            # some were accepted before (or twice in this request): list the first of them
            duplicates = self.duplicate_recipients
            for number in recipients:
                if len(duplicates) >= LISTED_DUPLICATES:
                    break
                if counts[number] > 1 and number not in duplicates:
                    duplicates.append(number)
        self.acceptances += len(recipients)
        if self.first_accepted_at is None:
            self.first_accepted_at = when
        self.last_accepted_at = when

    def summary(self) -> dict[str, Any]:
        """The JSON document of `GET /_sandbox/ledger/{alert_id}`."""
        accepted = len(self.counts)
        return {
            "alert_id": self.alert_id,
            "accepted": accepted,
            "acceptances": self.acceptances,
            "duplicates": self.acceptances - accepted,
            "duplicate_recipients": list(self.duplicate_recipients),
            "requests": self.requests,
            "first_accepted_at": self.first_accepted_at,
            "last_accepted_at": self.last_accepted_at,
        }

    def recipient_lines(self, chunk: int = 10_000) -> Iterator[bytes]:
        """Every accepted recipientNo, one a line, in chunks of `chunk` numbers.

        The numbers are copied now, on the event loop: the response may iterate in a thread.
        """
        numbers = list(self.counts)
        return (
            ("\n".join(numbers[start : start + chunk]) + "\n").encode()
            for start in range(0, len(numbers), chunk)
        )


class Ledger:
    """The ledgers of every alert the sandbox has seen, by alert id."""

    def __init__(self) -> None:
        self._alerts: dict[str, AlertLedger] = {}

    def of(self, alert_id: str) -> AlertLedger:
        """The ledger of `alert_id`, created empty on first use."""
        ledger = self._alerts.get(alert_id)
        if ledger is None:
            ledger = self._alerts[alert_id] = AlertLedger(alert_id)
        return ledger

    def get(self, alert_id: str) -> AlertLedger | None:
        """The ledger of `alert_id`, or None when no request named it."""
        return self._alerts.get(alert_id)

    def clear(self) -> None:
        """Forget every alert."""
        self._alerts.clear()
