"""Kafka producer and consumer factories with the settings every allim client uses, and the
way a consumer parks a record it cannot process on the dead-letter topic."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import RecordMetadata

from common import topics
from common.events import CloudEvent, Headers

logger = logging.getLogger(__name__)

# a reason is an exception's text, which can quote the whole record; headers stay small
MAX_DEAD_LETTER_REASON = 1000


class ConsumedRecord(Protocol):
    """What allim reads of a consumed Kafka record (aiokafka's `ConsumerRecord`)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Headers | tuple[tuple[str, bytes], ...]: ...


def create_producer(bootstrap: str, client_id: str, *, linger_ms: int = 5) -> AIOKafkaProducer:
    """An idempotent producer that waits for the broker's acknowledgement (acks=all)."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        max_batch_size=1 << 20,
        max_request_size=4 << 20,
        compression_type=None,
        request_timeout_ms=30_000,
        retry_backoff_ms=200,
    )


def create_consumer(
    bootstrap: str, group_id: str, client_id: str, *topics: str, **overrides: object
) -> AIOKafkaConsumer:
    """A consumer in `group_id` that commits by hand, after processing."""
    options: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "group_id": group_id,
        "client_id": client_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "max_poll_records": 500,
        "session_timeout_ms": 10_000,
        "heartbeat_interval_ms": 2_000,
        "retry_backoff_ms": 200,
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


async def hand_over_event(
    producer: AIOKafkaProducer, topic: str, key: str | None, event: CloudEvent
) -> asyncio.Future[RecordMetadata]:
    """Give one CloudEvent to the producer; the future is done when the broker has it."""
    acknowledged: asyncio.Future[RecordMetadata] = await producer.send(
        topic,
        value=event.value(),
        key=key.encode() if key is not None else None,
        headers=event.headers(),
    )
    return acknowledged


async def send_event(
    producer: AIOKafkaProducer, topic: str, key: str | None, event: CloudEvent
) -> None:
    """Publish one CloudEvent and wait until the broker has it."""
    await (await hand_over_event(producer, topic, key, event))


def dead_letter_headers(record: ConsumedRecord, reason: str) -> Headers:
    """The record's own headers, then `dlq_topic`, `dlq_partition`, `dlq_offset` and
    `dlq_reason` (cut to `MAX_DEAD_LETTER_REASON` characters)."""
    return [
        *record.headers,
        ("dlq_topic", record.topic.encode()),
        ("dlq_partition", str(record.partition).encode()),
        ("dlq_offset", str(record.offset).encode()),
        ("dlq_reason", reason[:MAX_DEAD_LETTER_REASON].encode()),
    ]


async def hand_over_dead_letter(
    producer: AIOKafkaProducer, record: ConsumedRecord, reason: str
) -> asyncio.Future[RecordMetadata]:
    """Log `record` and give it, as it came, to the producer for the dead-letter topic; the
    future is done when the broker has it."""
    logger.warning(
        "dead-lettering %s[%s]@%s: %s",
        record.topic,
        record.partition,
        record.offset,
        reason,
        extra={"topic": record.topic, "partition": record.partition, "offset": record.offset},
    )
    acknowledged: asyncio.Future[RecordMetadata] = await producer.send(
        topics.DEAD_LETTER,
        value=record.value,
        key=record.key,
        headers=dead_letter_headers(record, reason),
    )
    return acknowledged
