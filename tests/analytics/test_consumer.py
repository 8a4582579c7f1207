"""The consume loop's batching, with a scripted consumer and a store that holds its apply.

Unit tests: the Kafka consumer and the rollup store are fakes here, so the order of polls
and transactions can be set exactly. The loop against a real broker and PostgreSQL is
proven in test_service.py and test_crash.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import TopicPartition
from tests.waiting import eventually

from analytics.consumer import Aggregator
from analytics.metrics import AnalyticsMetrics
from analytics.records import Decoded
from analytics.store import Applied
from common import events, topics
from common.events import CloudEvent

PARTITION = TopicPartition(topics.ENGAGEMENT, 0)
ALERT = uuid.uuid4()


@dataclass
class FakeRecord:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    headers: list[tuple[str, bytes]]
    key: bytes | None = None


def _taps(first: int, count: int) -> list[FakeRecord]:
    records = []
    for offset in range(first, first + count):
        data = {
            "alert_id": str(ALERT),
            "subscriber_id": offset,
            "reader_id": f"r{offset}",
            "tapped_at": datetime.now(UTC).isoformat(),
        }
        event = CloudEvent(type=events.LINK_TAPPED, source="/test", data=data)
        records.append(FakeRecord(topics.ENGAGEMENT, 0, offset, event.value(), event.headers()))
    return records


@dataclass
class ScriptedConsumer:
    """Hands out the scripted polls in order (at most `max_records` of each), then nothing."""

    polls: deque[list[FakeRecord]]
    committed: list[dict[TopicPartition, int]] = field(default_factory=list)
    all_committed: asyncio.Event = field(default_factory=asyncio.Event)
    end: int = 100  # the offset after the last scripted record
    handed_out: int = 0  # records returned by getmany so far

    async def getmany(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[FakeRecord]]:
        if not self.polls:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        poll = self.polls.popleft()
        if max_records is not None and len(poll) > max_records:
            self.polls.appendleft(poll[max_records:])
            poll = poll[:max_records]
        self.handed_out += len(poll)
        return {PARTITION: poll}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.append(dict(offsets))
        if offsets.get(PARTITION) == self.end:
            self.all_committed.set()


@dataclass
class HeldStore:
    """Applies nothing until `release` is set; remembers each transaction's tap ids."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    transactions: list[list[int]] = field(default_factory=list)

    async def apply(self, decoded: Decoded) -> Applied:
        self.transactions.append([t.subscriber_id for t in decoded.taps])
        self.started.set()
        await self.release.wait()
        return Applied(new_events=len(decoded.taps))


class Changes:
    def mark(self, alert_ids: Any) -> None:
        pass


async def _run(
    consumer: ScriptedConsumer, store: HeldStore, max_batch: int, taken_while_held: int
) -> None:
    """Run the loop, holding its first transaction until it has taken `taken_while_held`
    records (the first poll's included): records handed to the loop while the transaction
    is held are in the next one, whenever it is released."""
    aggregator = Aggregator(
        consumer,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]  # no poison here: nothing is dead-lettered
        store,  # type: ignore[arg-type]
        AnalyticsMetrics(),
        Changes(),
        max_batch=max_batch,
        poll_seconds=0.01,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(aggregator.run(stop))
    # the first transaction is held while the next polls arrive
    await asyncio.wait_for(store.started.wait(), 30)
    await eventually(lambda: consumer.handed_out == taken_while_held, what="taken")
    assert store.transactions == [list(range(10))]  # still the first one only
    store.release.set()
    # every record was applied and committed: nothing is left for another transaction
    await asyncio.wait_for(consumer.all_committed.wait(), 30)
    stop.set()
    await running


async def test_polls_arriving_while_a_transaction_runs_are_applied_together() -> None:
    records = _taps(0, 100)
    consumer = ScriptedConsumer(deque([records[:10], records[10:40], records[40:100]]))
    store = HeldStore()

    await _run(consumer, store, max_batch=1000, taken_while_held=100)

    # the first poll alone, then everything that came while it was held, in one transaction
    assert store.transactions == [list(range(10)), list(range(10, 100))]
    assert consumer.committed == [{PARTITION: 10}, {PARTITION: 100}]


async def test_a_transaction_never_takes_more_than_max_batch_records() -> None:
    records = _taps(0, 100)
    consumer = ScriptedConsumer(deque([records[:10], records[10:100]]))
    store = HeldStore()

    # the next 40 fill the next transaction: the loop waits for the held one with them
    await _run(consumer, store, max_batch=40, taken_while_held=50)

    assert store.transactions == [
        list(range(10)),
        list(range(10, 50)),
        list(range(50, 90)),
        list(range(90, 100)),
    ]
    assert [c[PARTITION] for c in consumer.committed] == [10, 50, 90, 100]
