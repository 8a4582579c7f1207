"""Fixtures of the broadcaster tests: a store, subscribers and alerts in a district of their
own (so tests that share the session's database never see each other's audience), and, from
`tests/system.py`, a real sandbox and `allim broadcaster` child processes. The classes they
hand out live in `kits.py` and `children.py`, for the tests to type them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from tests.broadcaster.kits import Kit
from tests.system import broadcaster_env, sandbox, spawn

from broadcaster.store import Store
from common.db import asyncpg_dsn
from common.kafka import create_producer


@pytest.fixture(scope="session")
async def store(database_url: str) -> AsyncIterator[Store]:
    """The broadcaster's store on the session's database."""
    store = await Store.connect(asyncpg_dsn(database_url), 8)
    yield store
    await store.close()


@pytest.fixture
async def stores(database_url: str) -> AsyncIterator[list[Store]]:
    """Three stores, as three sender processes would have."""
    made = [await Store.connect(asyncpg_dsn(database_url), 2) for _ in range(3)]
    yield made
    for store in made:
        await store.close()


@pytest.fixture(scope="session")
async def producer(kafka_topics: str) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer on the test broker."""
    producer = create_producer(kafka_topics, "allim-test")
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
def kit(store: Store, producer: AIOKafkaProducer) -> Kit:
    """The builders, on the session's store and producer."""
    return Kit(store, producer)


__all__ = ["broadcaster_env", "kit", "producer", "sandbox", "spawn", "store", "stores"]
