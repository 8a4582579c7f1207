"""Reproducible streams of delivery and tap events, what their rollups must say, and how to
publish them and read the rollups back."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta

import asyncpg
from aiokafka import AIOKafkaProducer
from tests.analytics.facts import T0

from common import events
from common.events import CloudEvent
from common.messages import AlertLifecycleData, DeliveryBatchData, Message, TapData
from common.topics import ALERT_EVENTS, DELIVERIES, ENGAGEMENT


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
