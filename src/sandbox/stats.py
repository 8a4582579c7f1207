"""Totals of what the sandbox answered and did, and per-second series of what it accepted."""

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
    """Totals, plus per wall-clock second over the last `window` seconds: recipients accepted
    and send requests throttled (429)."""

    window: int
    totals: Totals = field(default_factory=Totals)
    _accepted: OrderedDict[int, int] = field(default_factory=OrderedDict)
    _throttled: OrderedDict[int, int] = field(default_factory=OrderedDict)

    def accepted(self, recipients: int, wall: float) -> None:
        """Count `recipients` accepted at unix time `wall`."""
        self.totals.recipients_accepted += recipients
        self._count(self._accepted, recipients, wall)

    def throttled(self, wall: float) -> None:
        """Count one send request refused with 429 at unix time `wall`."""
        self.totals.throttled += 1
        self._count(self._throttled, 1, wall)

    def _count(self, series: OrderedDict[int, int], n: int, wall: float) -> None:
        second = int(wall)
        series[second] = series.get(second, 0) + n
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
            "accepted_per_second": [[second, n] for second, n in self._accepted.items()],
            "throttled_per_second": [[second, n] for second, n in self._throttled.items()],
        }

    def reset(self) -> None:
        """Start counting from zero."""
        self.totals = Totals()
        self._accepted.clear()
        self._throttled.clear()
