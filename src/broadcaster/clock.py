"""The time the rate limiter, the settle window and the pipes wait by: `Clock`, `LoopClock`.

Both only ever ask "how late is it" (monotonic seconds), "wait this long" and "wait for this
event, at most this long", so a test can hand them a clock of its own and move time itself.
The shared rate buckets also need a time every sender process agrees on: the real clock
leaves that to the database (`shared_time` is None, the statements use `clock_timestamp()`).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    """Monotonic time and waiting by it."""

    def now(self) -> float:
        """Monotonic seconds; only differences mean anything."""
        ...

    def shared_time(self) -> datetime | None:
        """The time shared rate buckets are refilled at; None for the database's own clock."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once `seconds` have passed (at once when not positive)."""
        ...

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        """Wait until `event` is set (True) or `seconds` have passed (False)."""
        ...


class LoopClock:
    """The running event loop's clock: the one every process uses outside tests."""

    def now(self) -> float:
        """The loop's monotonic time."""
        return asyncio.get_running_loop().time()

    def shared_time(self) -> None:
        """None: the database's `clock_timestamp()` is the time every process shares."""
        return None

    async def sleep(self, seconds: float) -> None:
        """`asyncio.sleep`, which also yields to other tasks when `seconds` is 0."""
        await asyncio.sleep(max(0.0, seconds))

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        """`event.wait()` for at most `seconds`."""
        if seconds <= 0:
            return event.is_set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
        return event.is_set()
