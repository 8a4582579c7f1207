"""Totals of what the sandbox answered and did, and a per-second series of accepted recipients."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Totals:
    """Counters since start or the last reset."""

    requests: int = 0
    batches_accepted: int = 0
    recipients_accepted: int = 0
    recipients_refused: int = 0
    idempotent_replays: int = 0
    bad_requests: int = 0
    unauthorized: int = 0
    throttled: int = 0
    server_errors: int = 0
    timeouts: int = 0
    resets: int = 0
    lookups: int = 0
    taps_made: int = 0
    taps_failed: int = 0
    taps_dropped: int = 0


@dataclass
class Stats:
    """Totals plus accepted recipients per wall-clock second over the last `window` seconds."""

    window: int
    totals: Totals = field(default_factory=Totals)
    _per_second: OrderedDict[int, int] = field(default_factory=OrderedDict)

    def accepted(self, recipients: int, wall: float) -> None:
        """Count `recipients` accepted at unix time `wall`."""
        self.totals.recipients_accepted += recipients
        second = int(wall)
        series = self._per_second
        series[second] = series.get(second, 0) + recipients
        oldest = second - self.window
        while series:
            first = next(iter(series))
            if first > oldest:
                break
            del series[first]

    def document(self, pending_taps: int) -> dict[str, Any]:
        """The JSON document of `GET /_sandbox/stats`."""
        return {
            "totals": asdict(self.totals) | {"taps_pending": pending_taps},
            "accepted_per_second": [[second, n] for second, n in self._per_second.items()],
        }

    def reset(self) -> None:
        """Start counting from zero."""
        self.totals = Totals()
        self._per_second.clear()
