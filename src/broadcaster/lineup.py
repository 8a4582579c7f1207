"""The sender's line-up: which received shard tasks run now, which wait, and what may be
committed.

Urgent shards (`broadcast.shards.urgent`) are started before any normal one and, from the
moment they arrive, hold every normal shard's next batch (through `Priority`) until they
have sent their last batch, not until those are settled too. Both kinds run at most
`shard_concurrency` at a time, not counting up to as many more that have sent their last
batch and wait for those in flight to settle: the next shard starts meanwhile, so the
sender does not idle at every shard's end (each running shard holds a database connection
for its lock). A shard held by quiet hours takes no slot until they end, unless its alert
is cancelled meanwhile: then it runs at once, to finish as cancelled. A record's offset
may be committed only once its shard is finished, and only up to the lowest offset still
unfinished in its partition.

Nothing here touches Kafka or starts a task: the dispatcher asks which shards to start and
tells the line-up what became of them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from aiokafka import TopicPartition

from broadcaster.control import Priority
from common import topics
from common.messages import ShardTask


@dataclass
class Work:
    """One shard task received from Kafka, and the means to stop it."""

    partition: TopicPartition
    offset: int
    task: ShardTask
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    runner: asyncio.Task[None] | None = None
    not_before: float = 0.0  # loop time before which it must not start (quiet hours)
    draining: bool = False  # it sends nothing more; its batches in flight are settling
    holds_urgent: bool = False  # an urgent shard counted in `Priority` (normal ones wait)

    @property
    def urgent(self) -> bool:
        """Whether it came from the urgent topic."""
        topic: str = self.partition.topic
        return topic == topics.BROADCAST_SHARDS_URGENT

    @property
    def key(self) -> tuple[TopicPartition, int]:
        """Where its record stands: one running shard per record."""
        return (self.partition, self.offset)


class Lag(NamedTuple):
    """Shards received and not finished, waiting or running: urgent, normal, and the normal
    ones held for quiet hours (not counted in `normal`); none of a cancelled alert waits."""

    urgent: int
    normal: int
    held: int


def _never(alert_id: uuid.UUID) -> bool:
    return False


class Offsets:
    """Per partition: offsets received and not finished, and the highest received."""

    def __init__(self) -> None:
        self._pending: dict[TopicPartition, set[int]] = {}
        self._highest: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}

    def received(self, partition: TopicPartition, offset: int) -> None:
        """A record was taken from the partition."""
        self._pending.setdefault(partition, set()).add(offset)
        self._highest[partition] = max(offset, self._highest.get(partition, -1))

    def finished(self, partition: TopicPartition, offset: int) -> None:
        """The record's work is over; its offset may be committed."""
        self._pending.get(partition, set()).discard(offset)

    def committable(self, only: set[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """The offsets to commit now: below the lowest pending one, or past the highest."""
        result = {}
        for partition, highest in self._highest.items():
            if only is not None and partition not in only:
                continue
            pending = self._pending.get(partition)
            offset = min(pending) if pending else highest + 1
            if offset > self._committed.get(partition, -1):
                result[partition] = offset
        return result

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        """Remember what was committed."""
        self._committed.update(offsets)

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """The partitions went to another consumer."""
        for partition in partitions:
            self._pending.pop(partition, None)
            self._highest.pop(partition, None)
            self._committed.pop(partition, None)


class Lineup:
    """The shards received and not finished: waiting (urgent, normal, held) or running."""

    def __init__(self, shard_concurrency: int, priority: Priority) -> None:
        self.shard_concurrency = shard_concurrency
        self.priority = priority
        self.offsets = Offsets()
        self.queued: deque[Work] = deque()
        self.urgent: deque[Work] = deque()
        self.held: list[Work] = []  # normal shards waiting for quiet hours to end
        self.running: dict[tuple[TopicPartition, int], Work] = {}

    def add(self, work: Work) -> None:
        """A shard task arrived; an urgent one holds normal batches from now on."""
        if work.urgent:
            self._hold_urgent(work)
            self.urgent.append(work)
        else:
            self.queued.append(work)

    def due(self, now: float, cancelled: Callable[[uuid.UUID], bool] = _never) -> list[Work]:
        """The shards to start now (loop time `now`), urgent first; they count as running.

        A held shard of a `cancelled` alert need not wait for quiet hours to end: it is
        queued, to be finished as cancelled.
        """
        still: list[Work] = []
        for work in self.held:
            if work.not_before <= now or cancelled(work.task.alert_id):
                self.queued.append(work)
            else:
                still.append(work)
        self.held = still
        starting = []
        for urgent, waiting in ((True, self.urgent), (False, self.queued)):
            running = [w for w in self.running.values() if w.urgent == urgent]
            draining = sum(1 for w in running if w.draining)
            # a draining shard still holds its lock's connection: at most as many again
            busy = len(running) - min(draining, self.shard_concurrency)
            while waiting and busy < self.shard_concurrency:
                work = waiting.popleft()
                self.running[work.key] = work
                starting.append(work)
                busy += 1
        return starting

    def sending(self, work: Work) -> None:
        """A running shard (re)starts its pipe: it sends again, and an urgent one holds."""
        work.draining = False
        if work.urgent:
            self._hold_urgent(work)

    def drained(self, work: Work) -> None:
        """The shard sent its last batch: the next may start while those settle.

        An urgent shard stops holding the normal ones back: what it has left is settling.
        """
        work.draining = True
        self._release_urgent(work)

    def hold(self, work: Work, not_before: float) -> None:
        """Park a shard held by quiet hours until loop time `not_before`; it takes no slot."""
        work.not_before = not_before
        work.runner = None
        self.held.append(work)

    def ended(self, work: Work, *, finished: bool) -> None:
        """The shard's run is over; when `finished` its offset may be committed."""
        self._release_urgent(work)
        self.running.pop(work.key, None)
        if finished:
            self.offsets.finished(work.partition, work.offset)

    def revoke(self, partitions: set[TopicPartition]) -> list[Work]:
        """Drop the waiting shards of lost partitions; the running ones, for the caller to stop."""
        self.queued = deque(w for w in self.queued if w.partition not in partitions)
        for work in [w for w in self.urgent if w.partition in partitions]:
            self.urgent.remove(work)
            self._release_urgent(work)
        self.held = [w for w in self.held if w.partition not in partitions]
        return [w for w in self.running.values() if w.partition in partitions]

    def lag(self, cancelled: Callable[[uuid.UUID], bool] = _never) -> Lag:
        """Shards received and not finished; those of `cancelled` alerts only while running.

        The gauges an alert on stuck senders reads: a shard held for quiet hours, or one of
        a cancelled alert that waits for a slot only to finish, is no sign of being stuck.
        """

        def live(works: Iterable[Work]) -> int:
            return sum(1 for w in works if not cancelled(w.task.alert_id))

        urgent = sum(1 for w in self.running.values() if w.urgent)
        normal = len(self.running) - urgent + live(self.queued)
        return Lag(urgent + live(self.urgent), normal, live(self.held))

    def _hold_urgent(self, work: Work) -> None:
        if not work.holds_urgent:
            work.holds_urgent = True
            self.priority.urgent_arrived()

    def _release_urgent(self, work: Work) -> None:
        if work.holds_urgent:
            work.holds_urgent = False
            self.priority.urgent_done()
