"""The consume loop: poll, dead-letter poison, apply in one transaction, then commit offsets.

Offsets are committed only after the database transaction that applied the records has
committed, so a crash at any point redelivers records; `RollupStore.apply` recognises the
ones already applied by their CloudEvents id. A rebalance waits for the polls in hand to be
applied and committed (the listener takes the same lock), so partitions change hands clean.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from analytics.metrics import AnalyticsMetrics
from analytics.records import Decoded, Poison, decode
from analytics.store import Applied, RollupStore
from common import topics
from common.kafka import ConsumedRecord, hand_over_dead_letter
from common.waiting import wait_or_stop

logger = logging.getLogger(__name__)

T = TypeVar("T")

SUBSCRIBED = (topics.DELIVERIES, topics.ENGAGEMENT, topics.ALERT_EVENTS)
# records decoded between two turns of the event loop, so other tasks are not held up
DECODE_SLICE = 500
# while a transaction runs, how long each look for more records to add to the next one waits
MERGE_WAIT_MS = 20
# errors after which the same poll is applied again once the database answers
DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class ChangeListener(Protocol):
    """Told which alerts an applied poll changed (the snapshot publisher)."""

    def mark(self, alert_ids: Iterable[uuid.UUID]) -> None:
        """Remember that these alerts changed."""


class _WaitForPoll(ConsumerRebalanceListener):  # type: ignore[misc]
    """Holds a rebalance until the polls in hand have been applied and committed."""

    def __init__(self, aggregator: Aggregator) -> None:
        self._aggregator = aggregator

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._aggregator.lock:
            await self._aggregator.drain()
        logger.info("partitions revoked: %s", sorted(str(tp) for tp in revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        logger.info("partitions assigned: %s", sorted(str(tp) for tp in assigned))


@dataclass
class Batch:
    """What one transaction applies: decoded facts, the offsets after them, records by topic."""

    decoded: Decoded = field(default_factory=Decoded)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    consumed: Counter[str] = field(default_factory=Counter)
    size: int = 0


class Aggregator:
    """Applies every record of `deliveries`, `engagement` and `alerts.lifecycle` exactly once.

    Two transactions' worth of records are in hand at most: while one is applied in
    PostgreSQL, the records that arrive meanwhile are fetched and decoded into the next (up
    to `max_batch`). They are applied and committed strictly in order, and one is never
    applied after the one before it was given up, so no offset passes an unapplied record.
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        store: RollupStore,
        metrics: AnalyticsMetrics,
        changes: ChangeListener,
        *,
        max_batch: int = 50_000,
        poll_seconds: float = 0.2,
        retry_seconds: float = 1.0,
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._store = store
        self._metrics = metrics
        self._changes = changes
        self._max_batch = max_batch
        self._poll_ms = max(1, int(poll_seconds * 1000))
        self._retry_seconds = retry_seconds
        self.lock = asyncio.Lock()
        self._pending: asyncio.Task[bool] | None = None

    def subscribe(self) -> None:
        """Join the group on the analytics topics, with the rebalance listener."""
        self._consumer.subscribe(list(SUBSCRIBED), listener=_WaitForPoll(self))

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; the poll being applied is finished first."""
        try:
            while not stop.is_set():
                try:
                    polled = await self._consumer.getmany(
                        timeout_ms=self._poll_ms, max_records=self._max_batch
                    )
                except KafkaError:
                    logger.warning("polling Kafka failed; retrying", exc_info=True)
                    await wait_or_stop(stop, self._retry_seconds)
                    continue
                if not polled:
                    continue
                async with self.lock:
                    batch = Batch()
                    await self._take(polled, batch)
                    await self._take_more(batch, stop)
                    if not await self.drain() or stop.is_set():
                        return
                    self._pending = asyncio.create_task(self._finish(batch, stop))
        finally:
            await self.drain()

    async def _take(
        self, polled: Mapping[TopicPartition, Sequence[ConsumedRecord]], batch: Batch
    ) -> None:
        """Add a poll to the next transaction: its decoded facts, offsets and counts.

        The records themselves are not kept (only poison, for the dead-letter topic): two
        full transactions would otherwise hold all their records in memory.
        """
        taken = [r for records in polled.values() for r in records]
        for tp, records in polled.items():
            if records:
                batch.offsets[tp] = records[-1].offset + 1
        for record in taken:
            batch.consumed[record.topic] += 1
        batch.size += len(taken)
        # decoded while the previous poll's transaction runs in PostgreSQL, in slices:
        # between two, that transaction sends its next statement
        for start in range(0, len(taken), DECODE_SLICE):
            decode(taken[start : start + DECODE_SLICE], into=batch.decoded)
            await asyncio.sleep(0)

    async def _take_more(self, batch: Batch, stop: asyncio.Event) -> None:
        """While the transaction before is still running, take in what else has arrived.

        Up to `max_batch` records: one transaction of many records costs PostgreSQL much
        less than several small ones (each pays its statements, sorts and commit), and a
        fetch's remainder no longer makes a small transaction of its own.
        """
        while (
            self._pending is not None
            and not self._pending.done()
            and batch.size < self._max_batch
            and not stop.is_set()
        ):
            try:
                polled = await self._consumer.getmany(
                    timeout_ms=MERGE_WAIT_MS, max_records=self._max_batch - batch.size
                )
            except KafkaError:
                return  # the loop's own poll reports it and retries
            await self._take(polled, batch)

    async def drain(self) -> bool:
        """Wait until the poll in flight is committed; False if it was given up (stopping)."""
        pending, self._pending = self._pending, None
        return True if pending is None else await pending

    async def _finish(self, batch: Batch, stop: asyncio.Event) -> bool:
        decoded = batch.decoded
        if (
            decoded.poison
            and await self._retry(lambda: self._dead_letter(decoded.poison), stop) is None
        ):
            return False
        started = time.perf_counter()
        applied = await self._retry(lambda: self._store.apply(decoded), stop)
        if applied is None:
            return False
        self._metrics.batch_seconds.observe(time.perf_counter() - started)
        self._metrics.batch_records.observe(batch.size)
        await self._commit(batch.offsets)
        self._count(batch, applied)
        self._changes.mark(applied.alerts)
        return True

    async def _retry(self, step: Callable[[], Awaitable[T]], stop: asyncio.Event) -> T | None:
        """Run `step` until it succeeds, or give up (None) when `stop` is set while it fails."""
        while True:
            try:
                return await step()
            except (KafkaError, *DATABASE_ERRORS):
                logger.warning("applying a poll failed; retrying the same poll", exc_info=True)
            if stop.is_set():
                return None
            await wait_or_stop(stop, self._retry_seconds)

    async def _dead_letter(self, poison: list[Poison]) -> int:
        sent = [
            await hand_over_dead_letter(self._producer, item.record, item.reason) for item in poison
        ]
        await asyncio.gather(*sent)
        return len(sent)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self._consumer.commit(offsets)
        except KafkaError:
            # the poll is applied; whoever reads these records again skips them by id
            logger.warning("committing offsets failed; records will be redelivered", exc_info=True)

    def _count(self, batch: Batch, applied: Applied) -> None:
        decoded = batch.decoded
        for topic, n in batch.consumed.items():
            self._metrics.records.labels(topic).inc(n)
        outcomes = {
            "applied": applied.new_events,
            "duplicate": applied.duplicates,
            "skipped": decoded.skipped,
            "dead_letter": len(decoded.poison),
        }
        for outcome, n in outcomes.items():
            if n:
                self._metrics.events.labels(outcome).inc(n)
        self._metrics.count(applied)
