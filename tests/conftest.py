"""Fixtures for the real Kafka broker and PostgreSQL server that `make test` starts.

`deploy/local/test.sh` exports ALLIM_DATABASE_URL and ALLIM_KAFKA_BOOTSTRAP. Each test
session gets a database of its own, created and migrated here and dropped at the end.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.admin import run_migrations
from common.db import asyncpg_dsn, create_engine
from common.topics import ensure_topics


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
    server_url = make_url(_require("ALLIM_DATABASE_URL"))
    name = f"allim_test_{uuid.uuid4().hex[:10]}"
    admin_dsn = asyncpg_dsn(
        server_url.set(database="postgres").render_as_string(hide_password=False)
    )
    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    url = server_url.set(database=name).render_as_string(hide_password=False)
    await asyncio.to_thread(run_migrations, url)
    yield url
    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the session's database."""
    engine = create_engine(database_url, pool_size=5)
    yield engine
    await engine.dispose()
