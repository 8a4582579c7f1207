"""A clock that moves only when told to, for tests that assert counts against time they drive."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta


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
