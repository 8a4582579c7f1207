"""The sandbox's settable clock, and the BRAND quiet-hours rule that reads it."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from datetime import time as time_of_day

KST = timezone(timedelta(hours=9), "KST")
# BRAND messages are refused from 20:50 to 08:00 Korean time (result code 3022)
QUIET_FROM = time_of_day(20, 50)
QUIET_UNTIL = time_of_day(8, 0)


class Clock:
    """Wall-clock time shifted by an offset that tests and operators set."""

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self.offset = 0.0

    def now(self) -> float:
        """The sandbox's current unix time."""
        return self._wall() + self.offset

    def set_now(self, when: float) -> None:
        """Make the clock read `when` now and run on from there."""
        self.offset = when - self._wall()

    def datetime(self) -> datetime:
        """The sandbox's current time, timezone-aware (UTC)."""
        return datetime.fromtimestamp(self.now(), UTC)


def in_brand_quiet_hours(unix: float) -> bool:
    """Whether BRAND messages are refused at `unix` (20:50-08:00 KST)."""
    local = datetime.fromtimestamp(unix, KST).time()
    return local >= QUIET_FROM or local < QUIET_UNTIL
