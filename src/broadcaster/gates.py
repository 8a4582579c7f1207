"""Whether a shard's next batch may go now: urgent shards first, pause, quiet hours, expiry.

A gate only answers; the pipe acts on the answer (stops, holds the shard until quiet hours
end, gives an expired alert up). Waiting is on events: a pause lasts until a resume or a
cancel changes `Control`, urgent shards hold normal ones until `Priority` changes, and every
wait ends as soon as the sender stops.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from broadcaster.clock import Clock
from broadcaster.control import Control, Priority
from common.messages import Category

# when a category may be sent again (None: now), and when BRAND messages are accepted again
HeldUntil = Callable[[Category, datetime], datetime | None]
BrandResumeAt = Callable[[datetime], datetime]
WallClock = Callable[[], datetime]

# a held batch due within this long is waited for inside the shard's pipe (retries of
# temporary failures); one due later gives the shard's slot back until then
HOLD_IN_PIPE = timedelta(seconds=5)


@dataclass(frozen=True)
class Held:
    """Quiet hours hold the shard until `until`."""

    until: datetime


Verdict = Literal["open", "halted", "expired"] | Held


def due_later(not_before: datetime | None, now: datetime) -> bool:
    """True when a held batch is due too late to be waited for inside the pipe."""
    return not_before is not None and not_before - now > HOLD_IN_PIPE


class Gate:
    """The gate of one shard's pipe."""

    def __init__(
        self,
        alert_id: uuid.UUID,
        category: Category,
        expires_at: datetime | None,
        stopping: asyncio.Event,
        control: Control,
        priority: Priority,
        held_until: HeldUntil,
        clock: Clock,
        wall_clock: WallClock,
    ) -> None:
        self.alert_id = alert_id
        self.category = category
        self.urgent = category == "emergency"
        self.expires_at = expires_at
        self.stopping = stopping
        self.control = control
        self.priority = priority
        self.held_until = held_until
        self.clock = clock
        self.wall_clock = wall_clock

    def halted(self) -> bool:
        """True once the sender stops or the alert is cancelled: nothing more is sent."""
        return self.stopping.is_set() or self.control.is_cancelled(self.alert_id)

    def expired(self) -> bool:
        """True once the alert's `expires_at` has passed."""
        return self.expires_at is not None and self.wall_clock() >= self.expires_at

    def _blocked(self) -> bool:
        return (not self.urgent and self.priority.urgent > 0) or self.control.is_paused(
            self.alert_id
        )

    async def wait(self) -> Verdict:
        """Wait while urgent shards go first or the alert is paused; then say what may go."""
        while not self.halted() and self._blocked() and not self.expired():
            waits: list[Awaitable[object]] = [
                self.stopping.wait(),
                self.control.changes.wait(),
                self.priority.changes.wait(),
            ]
            if self.expires_at is not None:
                # a pause past the expiry ends there, not at the resume
                left = (self.expires_at - self.wall_clock()).total_seconds()
                waits.append(self.clock.sleep(max(left, 0.0)))
            paused = self.control.is_paused(self.alert_id)
            if paused:
                self.control.waiting(self.alert_id, 1)
            try:
                await self._first(*waits)
            finally:
                if paused:
                    self.control.waiting(self.alert_id, -1)
        if self.expired():
            return "expired"
        if self.halted():
            return "halted"
        if self.urgent:
            return "open"
        held = self.held_until(self.category, self.wall_clock())
        return "open" if held is None else Held(held)

    async def sleep(self, seconds: float, *, until_cancelled: bool = True) -> None:
        """Sleep; wake early when the sender stops or (`until_cancelled`) the alert is cancelled."""
        deadline = self.clock.now() + seconds
        while not (self.halted() if until_cancelled else self.stopping.is_set()):
            remaining = deadline - self.clock.now()
            if remaining <= 0:
                return
            await self._first(
                self.stopping.wait(), self.control.changes.wait(), self.clock.sleep(remaining)
            )

    async def sleep_until(self, when: datetime) -> None:
        """`sleep` until the wall clock reads `when`."""
        await self.sleep((when - self.wall_clock()).total_seconds())

    @staticmethod
    async def _first(*waits: Awaitable[object]) -> None:
        tasks = [asyncio.ensure_future(w) for w in waits]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
