import asyncio
import time
import uuid

import pytest

from common.events import DELIVERY_BATCH, CloudEvent, EventError, time_ordered_id
from common.kafka import create_consumer, create_producer, send_event
from common.topics import DELIVERIES


def test_default_ids_are_uuid7_in_time_order() -> None:
    before = time.time_ns() // 1_000_000
    ids = [CloudEvent(DELIVERY_BATCH, "/t", {}).id for _ in range(1000)]
    last = max(uuid.UUID(i).int >> 80 for i in ids)
    while time.time_ns() // 1_000_000 <= last:
        pass  # until the clock shows a later millisecond than every id's
    later = time_ordered_id()
    after = time.time_ns() // 1_000_000

    parsed = [uuid.UUID(i) for i in ids]
    assert {(u.version, u.variant) for u in parsed} == {(7, uuid.RFC_4122)}
    assert all(before <= u.int >> 80 <= after for u in parsed)
    assert len(set(ids)) == len(ids)
    assert max(ids) < later  # a later millisecond sorts after, as text too


def test_headers_round_trip() -> None:
    event = CloudEvent(type=DELIVERY_BATCH, source="/test", data={"n": 1}, subject="s")
    parsed = CloudEvent.from_record(event.headers(), event.value())
    assert parsed == event


@pytest.mark.parametrize(
    ("headers", "value", "message"),
    [
        ([], b"{}", "ce_specversion"),
        ([("ce_specversion", b"1.0"), ("ce_id", b"x"), ("ce_source", b"s")], b"{}", "ce_type"),
        (
            [("ce_specversion", b"0.3"), ("ce_id", b"x"), ("ce_source", b"s"), ("ce_type", b"t")],
            b"{}",
            "specversion",
        ),
        (
            [("ce_specversion", b"1.0"), ("ce_id", b"x"), ("ce_source", b"s"), ("ce_type", b"t")],
            b"{not json",
            "not JSON",
        ),
        (
            [("ce_specversion", b"1.0"), ("ce_id", b"x"), ("ce_source", b"s"), ("ce_type", b"t")],
            b"[1]",
            "object",
        ),
    ],
)
def test_bad_records_are_refused(
    headers: list[tuple[str, bytes]], value: bytes, message: str
) -> None:
    with pytest.raises(EventError, match=message):
        CloudEvent.from_record(headers, value)


@pytest.mark.integration
async def test_event_through_the_real_broker(kafka_topics: str) -> None:
    producer = create_producer(kafka_topics, "test-producer")
    consumer = create_consumer(
        kafka_topics, f"test-{uuid.uuid4().hex[:8]}", "test-consumer", DELIVERIES
    )
    await producer.start()
    await consumer.start()
    try:
        marker = uuid.uuid4().hex
        event = CloudEvent(type=DELIVERY_BATCH, source="/test", data={"marker": marker})
        await send_event(producer, DELIVERIES, marker, event)
        received = None
        async with asyncio.timeout(30):
            while received is None:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        parsed = CloudEvent.from_record(record.headers, record.value)
                        if parsed.data.get("marker") == marker:
                            received = parsed
        assert received == event
    finally:
        await consumer.stop()
        await producer.stop()
