"""Fixtures of the analytics tests: a pool with the consumer's temp tables, event builders
(the classes they hand out live in `facts.py` and `streams.py`, for the tests to type them)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from tests.analytics.facts import Facts
from tests.analytics.streams import Stream

from analytics.consumer import SUBSCRIBED
from analytics.store import RollupStore, prepare_connection
from common.db import asyncpg_dsn
from common.kafka import create_producer
from common.topics import partitions


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


@pytest.fixture
def facts() -> type[Facts]:
    """The fact builders."""
    return Facts


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
