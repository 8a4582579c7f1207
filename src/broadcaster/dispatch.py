"""The sender's consumer loop: shard tasks from Kafka to shard pipes, urgent ones first.

Urgent shards (`broadcast.shards.urgent`) are started before any normal one and, from the
moment they arrive, hold every normal shard's next batch until they have sent their last
batch (not until those are settled too). Both kinds run at most `shard_concurrency` at a
time, not counting up to as many more that have sent their last batch and wait for those in
flight to settle: the next shard starts meanwhile, so the sender does not idle at every
shard's end (each running shard holds a database connection for its lock). A record's
offset is committed only once its shard is finished (done, cancelled, skipped or
dead-lettered), only up to the lowest offset still running in its partition, and at most
once a second; on revocation the shards of the lost partitions stop after their in-flight
batches and what finished is committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pydantic
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from broadcaster.backoff import backoff_delay
from broadcaster.deps import SenderDeps
from broadcaster.pipe import Outcome, ShardPipe
from broadcaster.publishing import ConsumedRecord
from common import topics
from common.messages import ShardTask

logger = logging.getLogger(__name__)

FINISHED: frozenset[Outcome] = frozenset({"done", "cancelled", "skipped"})
# finished shards' offsets are committed at most this often while running (every commit is
# a request the broker serves; a sender that dies redelivers at most this much more, and
# finished shards are skipped); on revocation and shutdown at once
COMMIT_SECONDS = 1.0


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

    def forget(self, partitions: set[TopicPartition]) -> None:
        """The partitions went to another consumer."""
        for partition in partitions:
            self._pending.pop(partition, None)
            self._highest.pop(partition, None)
            self._committed.pop(partition, None)


class Dispatcher(ConsumerRebalanceListener):  # type: ignore[misc]
    """Consumes shard tasks and runs their pipes until told to stop."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        deps: SenderDeps,
        shard_concurrency: int,
        stopping: asyncio.Event,
    ) -> None:
        self.consumer = consumer
        self.deps = deps
        self.shard_concurrency = shard_concurrency
        self.stopping = stopping
        self.offsets = Offsets()
        self.queued: deque[Work] = deque()
        self.urgent: deque[Work] = deque()
        self.held: list[Work] = []  # normal shards waiting for quiet hours to end
        self.running: dict[tuple[TopicPartition, int], Work] = {}
        self._paused = False
        self._committed_at = 0.0  # loop time

    # -- rebalance listener ---------------------------------------------------------------

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Stop the pipes of lost partitions after their in-flight batches; commit."""
        revoked = set(revoked)
        if not revoked:
            return
        self.queued = deque(w for w in self.queued if w.partition not in revoked)
        for work in [w for w in self.urgent if w.partition in revoked]:
            self.urgent.remove(work)
            self._release_urgent(work)
        self.held = [w for w in self.held if w.partition not in revoked]
        lost = [w for w in self.running.values() if w.partition in revoked]
        for work in lost:
            work.stopping.set()
        await asyncio.gather(*(w.runner for w in lost if w.runner), return_exceptions=True)
        await self._commit(revoked)
        self.offsets.forget(revoked)
        logger.info(
            "partitions revoked: %s (%s shards stopped)", sorted(map(str, revoked)), len(lost)
        )

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Nothing to do: shards resume from their checkpoints in the database."""
        logger.info("partitions assigned: %s", len(assigned))

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until `stopping`; then stop every pipe, commit and leave the group."""
        self.consumer.subscribe(
            [topics.BROADCAST_SHARDS_URGENT, topics.BROADCAST_SHARDS], listener=self
        )
        try:
            while not self.stopping.is_set():
                try:
                    batches = await self.consumer.getmany(timeout_ms=100, max_records=200)
                except KafkaError as exc:
                    logger.warning("fetching shard tasks failed: %r", exc, exc_info=exc)
                    await asyncio.sleep(1.0)
                    continue
                for partition, records in batches.items():
                    for record in records:
                        await self._accept(partition, record)
                self._schedule()
                self._backpressure()
                now = asyncio.get_running_loop().time()
                if now - self._committed_at >= COMMIT_SECONDS:
                    self._committed_at = now
                    await self._commit()
                self._gauge()
        finally:
            await self._shutdown()

    async def _accept(self, partition: TopicPartition, record: ConsumedRecord) -> None:
        self.offsets.received(partition, record.offset)
        try:
            task = ShardTask.model_validate_json(record.value or b"")
        except pydantic.ValidationError as exc:
            await self.deps.publisher.dead_letter(record, f"invalid ShardTask: {exc}")
            self.deps.metrics.dead_letters.labels(record.topic).inc()
            self.offsets.finished(partition, record.offset)
            return
        work = Work(partition, record.offset, task)
        if work.urgent:
            # normal shards hold their next batch from now until the urgent ones are sent
            self._hold_urgent(work)
            self.urgent.append(work)
        else:
            self.queued.append(work)

    def _schedule(self) -> None:
        now = asyncio.get_running_loop().time()
        due = [w for w in self.held if w.not_before <= now]
        if due:
            self.held = [w for w in self.held if w.not_before > now]
            self.queued.extend(due)
        for urgent, waiting in ((True, self.urgent), (False, self.queued)):
            running = [w for w in self.running.values() if w.urgent == urgent]
            draining = sum(1 for w in running if w.draining)
            # a draining shard still holds its lock's connection: at most as many again
            busy = len(running) - min(draining, self.shard_concurrency)
            while waiting and busy < self.shard_concurrency:
                self._start(waiting.popleft())
                busy += 1

    def _start(self, work: Work) -> None:
        self.running[(work.partition, work.offset)] = work
        work.runner = asyncio.create_task(self._run(work))

    async def _run(self, work: Work) -> None:
        outcome: Outcome = "stopped"
        attempt = 0
        try:
            while not (work.stopping.is_set() or self.stopping.is_set()):
                if work.urgent:
                    self._hold_urgent(work)  # again, when run again after it drained
                try:
                    work.draining = False
                    pipe = ShardPipe(
                        self.deps, work.task, work.stopping, lambda: self._draining(work)
                    )
                    outcome = await pipe.run()
                except Exception as exc:
                    attempt += 1
                    logger.error(
                        "shard %s:%s failed; retrying",
                        work.task.alert_id,
                        work.task.shard_no,
                        exc_info=exc,
                        extra={"alert_id": str(work.task.alert_id), "shard": work.task.shard_no},
                    )
                    await self._pause(work, backoff_delay(attempt, 0.5, 10.0))
                    continue
                if outcome == "busy":
                    await self._pause(work, 0.5)
                    continue
                if outcome in ("unsettled", "conflict"):
                    # run again after a pause: it looks its unsettled batches up first
                    attempt += 1
                    await self._pause(work, backoff_delay(attempt, 0.5, 10.0))
                    continue
                if outcome == "held":
                    self._hold(work, pipe.held_until)
                break
        finally:
            self._release_urgent(work)
            self.running.pop((work.partition, work.offset), None)
            self.deps.metrics.shards.labels(outcome).inc()
            if outcome in FINISHED:
                self.offsets.finished(work.partition, work.offset)
            if not self.stopping.is_set():
                self._schedule()

    def _draining(self, work: Work) -> None:
        """The shard sent its last batch: the next one may start while those settle.

        An urgent shard stops holding the normal ones back: what it has left is settling.
        """
        work.draining = True
        self._release_urgent(work)
        if not self.stopping.is_set():
            self._schedule()

    def _hold_urgent(self, work: Work) -> None:
        if not work.holds_urgent:
            work.holds_urgent = True
            self.deps.priority.urgent_arrived()

    def _release_urgent(self, work: Work) -> None:
        if work.holds_urgent:
            work.holds_urgent = False
            self.deps.priority.urgent_done()

    def _hold(self, work: Work, until: datetime | None) -> None:
        """Park a shard held by quiet hours; it takes no slot until they end."""
        seconds = 0.0 if until is None else (until - datetime.now(UTC)).total_seconds()
        work.not_before = asyncio.get_running_loop().time() + max(0.0, seconds)
        work.runner = None
        self.held.append(work)

    async def _pause(self, work: Work, seconds: float) -> None:
        try:
            await asyncio.wait_for(work.stopping.wait(), seconds)
        except TimeoutError:
            pass

    def _backpressure(self) -> None:
        """Stop fetching normal shards while plenty are queued; urgent ones always flow."""
        normal = {p for p in self.consumer.assignment() if p.topic == topics.BROADCAST_SHARDS}
        if len(self.queued) > 4 * self.shard_concurrency and not self._paused:
            self.consumer.pause(*normal)
            self._paused = True
        elif len(self.queued) <= self.shard_concurrency and self._paused:
            self.consumer.resume(*normal)
            self._paused = False

    async def _commit(self, only: set[TopicPartition] | None = None) -> None:
        offsets = self.offsets.committable(only)
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except KafkaError as exc:
            logger.warning("offset commit failed: %r", exc)
            return
        self.offsets.committed(offsets)

    def _gauge(self) -> None:
        urgent = sum(1 for w in self.running.values() if w.urgent)
        self.deps.metrics.shard_lag.labels("urgent").set(urgent + len(self.urgent))
        self.deps.metrics.shard_lag.labels("normal").set(
            len(self.queued) + len(self.held) + len(self.running) - urgent
        )

    async def _shutdown(self) -> None:
        """Stop taking batches, let those in flight settle, commit, leave the group."""
        works = list(self.running.values())
        for work in works:
            work.stopping.set()
        await asyncio.gather(*(w.runner for w in works if w.runner), return_exceptions=True)
        await self._commit()
        logger.info("sender stopped: %s shards interrupted, offsets committed", len(works))
