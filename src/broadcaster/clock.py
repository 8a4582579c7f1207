"""The time the rate limiter and the settle window wait by: `Clock`, and the real `LoopClock`.

Both only ever ask "how late is it" (monotonic seconds), "wait this long" and "wait for this
event, at most this long", so a test can hand them a clock of its own and move time itself.
The shared rate buckets also need a time every sender process agrees on: the real clock
leaves that to the database (`shared_time` is None, the statements use `clock_timestamp()`).
`ManualClock` moves only when told to, for tests that assert counts against time they drive.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from datetime import UTC, datetime, timedelta
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


class ManualClock:
    """A clock that moves only when `advance` moves it; the shared time moves with it."""

    def __init__(self, start: datetime = datetime(2030, 1, 1, tzinfo=UTC)) -> None:
        self._start = start
        self._now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []  # a heap
        self._order = itertools.count()
        self._arrived = asyncio.Event()  # set whenever a task starts sleeping

    def now(self) -> float:
        """Seconds moved since the clock was made."""
        return self._now

    def shared_time(self) -> datetime:
        """The start time plus the seconds moved: what the database is told it is."""
        return self._start + timedelta(seconds=self._now)

    async def sleep(self, seconds: float) -> None:
        """Return once the clock was moved `seconds` on (only yield when not positive)."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        woken = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), woken))
        self._arrived.set()
        await woken

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        """Wait until `event` is set (True) or the clock moved `seconds` on (False)."""
        if event.is_set() or seconds <= 0:
            return event.is_set()
        waits = {asyncio.create_task(event.wait()), asyncio.create_task(self.sleep(seconds))}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        return event.is_set()

    @property
    def deadlines(self) -> list[float]:
        """When the tasks asleep on this clock wake, earliest first."""
        return sorted(when for when, _, woken in self._sleepers if not woken.done())

    async def until_sleeping(self, count: int = 1) -> None:
        """Return once at least `count` tasks are asleep on this clock."""
        while len(self.deadlines) < count:
            self._arrived.clear()
            await self._arrived.wait()

    def advance(self, seconds: float) -> None:
        """Move the clock `seconds` on and wake every task due by then."""
        if seconds < 0:
            raise ValueError(f"A clock moves forward, not by {seconds} s.")
        self._move_to(self._now + seconds)

    def advance_to_next(self) -> None:
        """Move the clock to the earliest wake-up and wake the tasks due then."""
        deadlines = self.deadlines
        if deadlines:
            self._move_to(max(self._now, deadlines[0]))

    def _move_to(self, when: float) -> None:
        self._now = when
        while self._sleepers and self._sleepers[0][0] <= self._now:
            woken = heapq.heappop(self._sleepers)[2]
            if not woken.done():
                woken.set_result(None)
