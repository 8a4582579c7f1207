"""Kafka producer and consumer factories with the settings every allim client uses."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import RecordMetadata

from common.events import CloudEvent


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
