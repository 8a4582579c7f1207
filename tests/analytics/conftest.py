"""Fixtures of the analytics tests: a pool with the consumer's temp tables, event builders."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from analytics.consumer import SUBSCRIBED
from analytics.records import Decoded, Delivery, Lifecycle, Tap
from analytics.store import RollupStore, prepare_connection
from common import events
from common.db import asyncpg_dsn
from common.events import CloudEvent
from common.kafka import create_producer
from common.messages import (
    AlertLifecycleData,
    DeliveryBatchData,
    Message,
    TapData,
)
from common.topics import ALERT_EVENTS, DELIVERIES, ENGAGEMENT, partitions

T0 = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the session's database whose connections have the consumer's temp tables."""
    pool = await asyncpg.create_pool(
        asyncpg_dsn(database_url), min_size=1, max_size=3, init=prepare_connection
    )
    yield pool
    await pool.close()


@pytest.fixture
def store(pool: asyncpg.Pool) -> RollupStore:
    """A rollup store under a consumer name of its own."""
    return RollupStore(pool, "test-" + uuid.uuid4().hex[:8])


class Facts:
    """Builders of the facts a poll holds."""

    @staticmethod
    def tap(
        alert: uuid.UUID,
        subscriber: int,
        reader: str,
        at: datetime = T0,
        event_id: str | None = None,
    ) -> Tap:
        """A tap by `reader` on the link sent to `subscriber`."""
        return Tap(event_id or str(uuid.uuid4()), alert, subscriber, reader, at)

    @staticmethod
    def delivery(
        alert: uuid.UUID,
        seq: int,
        delivered: int,
        failed_by_reason: dict[str, int] | None = None,
        at: datetime = T0,
    ) -> Delivery:
        """A settled batch of `alert` with these counts; analytics sums counts, not outcomes."""
        reasons = failed_by_reason or {}
        data = DeliveryBatchData(
            alert_id=alert,
            batch_id=f"{alert}:0:{seq}",
            shard_no=0,
            seq=seq,
            category="public",
            delivered=delivered,
            failed=sum(reasons.values()),
            failed_by_reason=reasons,
            subscriber_ids=[1],
            result_codes=[1000],
        )
        return Delivery(data.batch_id, at, data)

    @staticmethod
    def lifecycle(
        alert: uuid.UUID, kind: str, targeted: int, at: datetime = T0, status: str = "sending"
    ) -> Lifecycle:
        """An `alerts.lifecycle` event of type `dev.allim.alert.<kind>`."""
        data = AlertLifecycleData(
            alert_id=alert,
            status=status,
            category="public",
            targeted=targeted,
            delivered=0,
            failed=0,
            pending=targeted,
        )
        return Lifecycle(str(uuid.uuid4()), f"dev.allim.alert.{kind}", at, data)

    @staticmethod
    def decoded(*facts: Tap | Delivery | Lifecycle) -> Decoded:
        """A poll holding `facts` in this order."""
        out = Decoded()
        for fact in facts:
            if isinstance(fact, Tap):
                out.taps.append(fact)
            elif isinstance(fact, Delivery):
                out.deliveries.append(fact)
            else:
                out.lifecycle.append(fact)
        return out


@pytest.fixture
def facts() -> type[Facts]:
    """The fact builders."""
    return Facts


@dataclass
class Expected:
    """What the rollup of one alert must say once every event of a stream is applied."""

    targeted: int = 0
    delivered: int = 0
    failed: int = 0
    taps: int = 0
    readers: int = 0
    first_readers: int = 0
    forwarded_readers: int = 0


@dataclass
class Stream:
    """A random but reproducible stream of delivery and tap events over a few alerts.

    `expected` is computed independently of the consumer, by replaying the taps in log order
    (all events of an alert share a partition) with the definitions in docs: the first
    reader of a link is its first tapper; a reader is forwarded when their first tap was on
    a link whose first reader is someone else.
    """

    alerts: list[uuid.UUID]
    events: list[tuple[str, uuid.UUID, CloudEvent]] = field(default_factory=list)
    expected: dict[uuid.UUID, Expected] = field(default_factory=dict)

    @classmethod
    def build(cls, alerts: int, subscribers: int, taps: int, seed: int) -> Stream:
        """`taps` taps per alert on links of `subscribers` subscribers, after their deliveries."""
        rng = random.Random(seed)
        # fresh alert ids: the topics keep the streams of earlier runs
        stream = cls([uuid.uuid4() for _ in range(alerts)])
        for alert in stream.alerts:
            expected = stream.expected.setdefault(alert, Expected(targeted=subscribers))
            started = AlertLifecycleData(
                alert_id=alert,
                status="sending",
                category="emergency",
                targeted=subscribers,
                delivered=0,
                failed=0,
                pending=subscribers,
            )
            stream.add(ALERT_EVENTS, alert, events.ALERT_STARTED, started, None)
            for seq, first in enumerate(range(1, subscribers + 1, 100)):
                size = min(100, subscribers + 1 - first)
                failed = rng.randrange(3)
                batch = DeliveryBatchData(
                    alert_id=alert,
                    batch_id=f"{alert}:0:{seq}",
                    shard_no=0,
                    seq=seq,
                    category="emergency",
                    delivered=size - failed,
                    failed=failed,
                    failed_by_reason={"3019": failed} if failed else {},
                    subscriber_ids=list(range(first, first + size)),
                    result_codes=[3019] * failed + [1000] * (size - failed),
                )
                expected.delivered += size - failed
                expected.failed += failed
                stream.add(DELIVERIES, alert, events.DELIVERY_BATCH, batch, batch.batch_id)
            first_reader: dict[int, str] = {}
            readers: dict[str, bool] = {}
            for n in range(taps):
                subscriber = rng.randrange(1, subscribers + 1)
                # mostly the subscriber themselves; sometimes a friend they forwarded it to
                reader = f"u{subscriber}" if rng.random() < 0.7 else f"f{rng.randrange(taps)}"
                tapped = TapData(
                    alert_id=alert,
                    subscriber_id=subscriber,
                    reader_id=reader,
                    tapped_at=T0 + timedelta(seconds=n % 600),
                )
                stream.add(ENGAGEMENT, alert, events.LINK_TAPPED, tapped, None)
                first_reader.setdefault(subscriber, reader)
                readers.setdefault(reader, first_reader[subscriber] != reader)
            expected.taps = taps
            expected.readers = len(readers)
            expected.first_readers = len(first_reader)
            expected.forwarded_readers = sum(readers.values())
        return stream

    def add(
        self, topic: str, alert: uuid.UUID, type_: str, data: Message, event_id: str | None
    ) -> None:
        """Append one event of `alert` to the stream."""
        event = CloudEvent(
            type=type_, source="/allim/test", data=data.model_dump(mode="json"), subject=str(alert)
        )
        if event_id is not None:
            event = replace(event, id=event_id)
        self.events.append((topic, alert, event))

    def with_duplicates(self, every: int) -> list[tuple[str, uuid.UUID, CloudEvent]]:
        """The events with every `every`-th one published a second time a little later."""
        out: list[tuple[str, uuid.UUID, CloudEvent]] = []
        for n, item in enumerate(self.events):
            out.append(item)
            if n % every == 0 and n >= 5:
                out.append(self.events[n - 5])
        return out

    @staticmethod
    async def publish(
        producer: AIOKafkaProducer, items: list[tuple[str, uuid.UUID, CloudEvent]]
    ) -> None:
        """Publish events in order and wait until the broker has them all."""
        sent = [
            await producer.send(
                topic, value=event.value(), key=str(alert).encode(), headers=event.headers()
            )
            for topic, alert, event in items
        ]
        await asyncio.gather(*sent)

    @staticmethod
    async def rollups(pool: asyncpg.Pool, alerts: list[uuid.UUID]) -> dict[uuid.UUID, Expected]:
        """The rollups of `alerts` as stored, in the shape of `Expected`."""
        async with pool.acquire() as connection:
            rows = await connection.fetch(
                "SELECT * FROM alert_stats WHERE alert_id = ANY($1::uuid[])", alerts
            )
        names = [f.name for f in fields(Expected)]
        return {r["alert_id"]: Expected(**{n: r[n] for n in names}) for r in rows}


@pytest.fixture
async def producer(kafka_topics: str) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer on the test broker."""
    producer = create_producer(kafka_topics, "allim-analytics-test")
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
def streams() -> type[Stream]:
    """The stream builder, publisher and rollup reader."""
    return Stream


@pytest.fixture
async def group(kafka_topics: str) -> str:
    """A new consumer group whose offsets start at the current end of the analytics topics,
    so a consumer in it reads this test's events, not the history of earlier runs."""
    name = f"analytics-test-{uuid.uuid4().hex[:8]}"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_topics, group_id=name, enable_auto_commit=False
    )
    await consumer.start()
    try:
        subscribed = partitions(*SUBSCRIBED)
        consumer.assign(subscribed)
        await consumer.seek_to_end(*subscribed)
        await consumer.commit({tp: await consumer.position(tp) for tp in subscribed})
    finally:
        await consumer.stop()
    return name
