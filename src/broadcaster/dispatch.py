"""The sender's consumer loop: shard tasks from Kafka to shard pipes, through the line-up.

Records from both shard topics go into the `Lineup`, which says which shards start (urgent
first, at most `shard_concurrency` of each kind beside those draining). Each runs its pipe
until it has an outcome: a failure, a busy shard and an "unsettled" or "conflict" outcome
run it again after a pause; a shard held by quiet hours is parked until they end. A
finished shard's offset (done, cancelled, skipped or dead-lettered) is committed at most
once a second; on revocation the shards of the lost partitions stop after their in-flight
batches and what finished is committed; on shutdown every shard stops the same way.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pydantic
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from broadcaster.backoff import backoff_delay
from broadcaster.deps import SenderDeps
from broadcaster.lineup import Lineup, Work
from broadcaster.pipe import Outcome, ShardPipe
from common import topics
from common.kafka import ConsumedRecord
from common.messages import ShardTask
from common.waiting import wait_or_stop

logger = logging.getLogger(__name__)

FINISHED: frozenset[Outcome] = frozenset({"done", "cancelled", "skipped"})
# finished shards' offsets are committed at most this often while running (every commit is
# a request the broker serves; a sender that dies redelivers at most this much more, and
# finished shards are skipped); on revocation and shutdown at once
COMMIT_SECONDS = 1.0


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
        self.stopping = stopping
        self.lineup = Lineup(shard_concurrency, deps.priority)
        self._paused = False
        self._committed_at = 0.0  # loop time
        self._closing = False  # shutting down: no shard starts

    # -- rebalance listener ---------------------------------------------------------------

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Stop the pipes of lost partitions after their in-flight batches; commit."""
        revoked = set(revoked)
        if not revoked:
            return
        lost = self.lineup.revoke(revoked)
        for work in lost:
            work.stopping.set()
        await asyncio.gather(*(w.runner for w in lost if w.runner), return_exceptions=True)
        await self._commit(revoked)
        self.lineup.offsets.forget(revoked)
        logger.info(
            "partitions revoked: %s (%s shards stopped)", sorted(map(str, revoked)), len(lost)
        )

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Nothing to do: shards resume from their checkpoints in the database."""
        logger.info("partitions assigned: %s", len(assigned))

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until `stopping`; then stop every pipe and commit."""
        if not self.consumer.subscription():
            # once: run again by the supervisor, it keeps its place in the group
            self.consumer.subscribe(
                [topics.BROADCAST_SHARDS_URGENT, topics.BROADCAST_SHARDS], listener=self
            )
        self._closing = False
        try:
            while not self.stopping.is_set():
                try:
                    batches = await self.consumer.getmany(timeout_ms=100, max_records=200)
                except KafkaError as exc:
                    logger.warning("fetching shard tasks failed: %r", exc, exc_info=exc)
                    await wait_or_stop(self.stopping, 1.0)
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
        self.lineup.offsets.received(partition, record.offset)
        try:
            task = ShardTask.model_validate_json(record.value or b"")
        except pydantic.ValidationError as exc:
            attempt = 0
            while not self.stopping.is_set():
                try:
                    await self.deps.publisher.dead_letter(record, f"invalid ShardTask: {exc}")
                except KafkaError as error:
                    attempt += 1
                    logger.warning("dead-lettering failed: %r", error, exc_info=error)
                    await wait_or_stop(self.stopping, backoff_delay(attempt, 0.5, 10.0))
                    continue
                self.deps.metrics.dead_letters.labels(record.topic).inc()
                self.lineup.offsets.finished(partition, record.offset)
                return
            return  # not dead-lettered: its offset stays uncommitted, the record comes again
        self.lineup.add(Work(partition, record.offset, task))

    def _schedule(self) -> None:
        if self._closing or self.stopping.is_set():
            return
        now = asyncio.get_running_loop().time()
        for work in self.lineup.due(now, self.deps.control.is_cancelled):
            work.runner = asyncio.create_task(self._run(work))

    async def _run(self, work: Work) -> None:
        outcome: Outcome = "stopped"
        attempt = 0
        try:
            while not (work.stopping.is_set() or self.stopping.is_set()):
                self.lineup.sending(work)  # again, when run again after it drained
                try:
                    pipe = ShardPipe(
                        self.deps, work.task, work.stopping, lambda: self._drained(work)
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
                    await wait_or_stop(work.stopping, backoff_delay(attempt, 0.5, 10.0))
                    continue
                if outcome == "busy":
                    await wait_or_stop(work.stopping, 0.5)
                    continue
                if outcome in ("unsettled", "conflict"):
                    # run again after a pause: it looks its unsettled batches up first
                    attempt += 1
                    await wait_or_stop(work.stopping, backoff_delay(attempt, 0.5, 10.0))
                    continue
                if outcome == "held":
                    self._hold(work, pipe.held_until)
                break
        finally:
            self.lineup.ended(work, finished=outcome in FINISHED)
            self.deps.metrics.shards.labels(outcome).inc()
            self._schedule()

    def _drained(self, work: Work) -> None:
        """The shard sent its last batch: the next one may start while those settle."""
        self.lineup.drained(work)
        self._schedule()

    def _hold(self, work: Work, until: datetime | None) -> None:
        """Park a shard held by quiet hours; it takes no slot until they end."""
        seconds = 0.0 if until is None else (until - datetime.now(UTC)).total_seconds()
        self.lineup.hold(work, asyncio.get_running_loop().time() + max(0.0, seconds))

    def _backpressure(self) -> None:
        """Stop fetching normal shards while plenty are queued; urgent ones always flow."""
        normal = {p for p in self.consumer.assignment() if p.topic == topics.BROADCAST_SHARDS}
        queued = len(self.lineup.queued)
        if queued > 4 * self.lineup.shard_concurrency and not self._paused:
            self.consumer.pause(*normal)
            self._paused = True
        elif queued <= self.lineup.shard_concurrency and self._paused:
            self.consumer.resume(*normal)
            self._paused = False

    async def _commit(self, only: set[TopicPartition] | None = None) -> None:
        offsets = self.lineup.offsets.committable(only)
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except KafkaError as exc:
            logger.warning("offset commit failed: %r", exc)
            return
        self.lineup.offsets.committed(offsets)

    def _gauge(self) -> None:
        lag = self.lineup.lag(self.deps.control.is_cancelled)
        self.deps.metrics.shard_lag.labels("urgent").set(lag.urgent)
        self.deps.metrics.shard_lag.labels("normal").set(lag.normal)
        self.deps.metrics.shards_held.set(lag.held)

    async def _shutdown(self) -> None:
        """Stop taking batches, let those in flight settle, and commit what finished.

        Nothing starts meanwhile (a finishing shard schedules no other); the consumer leaves
        the group when it is stopped.
        """
        self._closing = True
        works = list(self.lineup.running.values())
        for work in works:
            work.stopping.set()
        await asyncio.gather(*(w.runner for w in works if w.runner), return_exceptions=True)
        await self._commit()
        logger.info("sender stopped: %s shards interrupted, offsets committed", len(works))
