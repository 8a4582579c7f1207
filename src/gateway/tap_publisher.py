"""Tap events on their way to Kafka's `engagement` topic, sent in batches.

A tap does not wait for Kafka: its event joins a queue and the tap is answered. One drain
task at a time takes everything queued and hands it to the producer as one record batch per
partition, so a burst of taps costs a few sends instead of one task and one send each; the
partition is the one the producer would pick for the key (the alert), as `send` does.

Every event taken is counted once its batch settles, in `allim_gateway_taps_total{outcome}`:
`recorded` when the broker has it, `failed` when its batch failed. At most `max_pending`
events wait (queued, or sent and not yet acknowledged); a tap beyond that, or before the
producer has connected, is counted as `dropped`. While Kafka is down the queue fills to
that bound and the drops show; when it is back, what waited is sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from common.events import Headers
from common.topics import ENGAGEMENT
from gateway.metrics import GatewayMetrics
from gateway.state import KafkaLink

logger = logging.getLogger(__name__)

Record = tuple[bytes, bytes, Headers]  # key, value, headers


class TapPublisher:
    """Queues tap events and sends them in batches; at most `max_pending` unsettled."""

    def __init__(self, metrics: GatewayMetrics, max_pending: int) -> None:
        if max_pending < 1:
            raise ValueError("A tap publisher must allow at least one pending event.")
        self._max_pending = max_pending
        self._recorded = metrics.taps.labels("recorded")
        self._failed = metrics.taps.labels("failed")
        self._dropped = metrics.taps.labels("dropped")
        self._queue: list[Record] = []
        self._pending = 0  # queued or in flight, not settled yet
        self._flushing: list[asyncio.Future[None]] = []  # who waits in `flush`
        self._drainer: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Events taken and not settled yet (queued, or sent and not acknowledged)."""
        return self._pending

    def publish(self, kafka: KafkaLink, key: bytes, value: bytes, headers: Headers) -> bool:
        """Queue one event; False (counted as dropped) when it cannot be taken now."""
        if self._pending >= self._max_pending or not kafka.ready.is_set():
            self._dropped.inc()
            return False
        self._pending += 1
        self._queue.append((key, value, headers))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain(kafka.producer))
        return True

    async def flush(self) -> None:
        """Wait until every event taken so far has settled (recorded or failed)."""
        while self._pending:
            waiter = asyncio.get_running_loop().create_future()
            self._flushing.append(waiter)
            await waiter

    async def _drain(self, producer: AIOKafkaProducer) -> None:
        try:
            while self._queue:
                taken, self._queue = self._queue, []
                await self._send(producer, taken)
        finally:
            self._drainer = None

    async def _send(self, producer: AIOKafkaProducer, records: list[Record]) -> None:
        unsent = len(records)
        try:
            for partition, batch in await _batches(producer, records):
                batch.close()  # its count is final: nothing else joins it
                count = batch.record_count()
                delivered = await producer.send_batch(batch, ENGAGEMENT, partition=partition)
                unsent -= count
                delivered.add_done_callback(lambda done, n=count: self._settle(done, n))
        except Exception:  # nobody awaits the drain task: every failure ends here, counted
            logger.warning("%d tap events were not published", unsent, exc_info=True)
            self._failed.inc(unsent)
            self._release(unsent)

    def _settle(self, delivered: asyncio.Future[Any], count: int) -> None:
        if delivered.cancelled() or delivered.exception() is not None:
            logger.warning(
                "a batch of %d tap events was not published: %r",
                count,
                None if delivered.cancelled() else delivered.exception(),
            )
            self._failed.inc(count)
        else:
            self._recorded.inc(count)
        self._release(count)

    def _release(self, count: int) -> None:
        self._pending -= count
        if self._pending == 0:
            waiting, self._flushing = self._flushing, []
            for waiter in waiting:
                if not waiter.done():
                    waiter.set_result(None)


async def _batches(producer: AIOKafkaProducer, records: Sequence[Record]) -> list[tuple[int, Any]]:
    """`records` as full record batches, each with its partition: the one `send` would pick
    for the record's key (computed once per key: the keys of a burst are a few alerts)."""
    partitions = sorted(await producer.partitions_for(ENGAGEMENT))
    by_key: dict[bytes, int] = {}
    open_batches: dict[int, Any] = {}
    full: list[tuple[int, Any]] = []
    for key, value, headers in records:
        partition = by_key.get(key)
        if partition is None:
            partition = by_key[key] = DefaultPartitioner()(key, partitions, partitions)
        batch = open_batches.get(partition)
        if batch is None:
            batch = open_batches[partition] = producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            full.append((partition, batch))  # full: start another for this partition
            batch = open_batches[partition] = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None, headers=headers)
    return full + list(open_batches.items())
