"""Fixtures for the real Kafka broker and PostgreSQL server that `make test` starts.

`deploy/local/test.sh` exports ALLIM_DATABASE_URL and ALLIM_KAFKA_BOOTSTRAP. Each test
session gets a database of its own, created and migrated here and dropped at the end.
A test that uses either is marked `integration`, so `make test-fast` (`-m "not integration"`,
no stack started) leaves it out.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.databases import scratch_database
from common.db import create_engine
from common.topics import ensure_topics

# every fixture that reaches the broker or the database server depends on one of these
STACK_FIXTURES = frozenset({"kafka_bootstrap", "database_url"})


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `integration` every test that uses the real broker or database server."""
    for item in items:
        if isinstance(item, pytest.Function) and STACK_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.integration)


def _require(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"Environment variable '{name}' is missing: run the tests with `make test`.")
    return value


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap address of the real broker."""
    return _require("ALLIM_KAFKA_BOOTSTRAP")


@pytest.fixture(scope="session")
async def kafka_topics(kafka_bootstrap: str) -> str:
    """The broker, with allim's topics created."""
    await ensure_topics(kafka_bootstrap)
    return kafka_bootstrap


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    """URL of a fresh database with every migration applied; dropped after the session."""
    async with scratch_database(_require("ALLIM_DATABASE_URL"), "allim_test") as url:
        yield url


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the session's database."""
    engine = create_engine(database_url, pool_size=5)
    yield engine
    await engine.dispose()
