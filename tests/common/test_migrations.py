"""The schema: every model's table, the index the keyset walk needs, and the migrations'
round trip (up to the newest revision, down to nothing, up again to the same schema)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.databases import run_downgrade, run_migrations, scratch_database
from common.db import asyncpg_dsn
from common.models import Base

pytestmark = pytest.mark.integration


async def test_every_model_table_exists(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("select tablename from pg_tables where schemaname = 'public'")
        )
        tables = {r[0] for r in rows}
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


async def test_keyset_walk_uses_the_active_index(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "insert into subscribers (recipient_no, district) "
                "select '010' || lpad(g::text, 8, '0'), 'd' || (g % 10) "
                "from generate_series(1, 20000) g on conflict do nothing"
            )
        )
        await connection.execute(text("analyze subscribers"))
        plan = await connection.execute(
            text(
                "explain select id, recipient_no from subscribers "
                "where status = 'active' and id > 15000 and id <= 20000 order by id limit 1000"
            )
        )
        lines = " ".join(r[0] for r in plan)
        await connection.execute(text("delete from subscribers"))
    assert "Index" in lines and "Sort" not in lines


async def _schema(url: str) -> dict[str, list[tuple[object, ...]]]:
    """The public schema of the database at `url`: columns, indexes and constraints."""
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        columns = await connection.fetch(
            "SELECT table_name, column_name, data_type, character_maximum_length, collation_name,"
            " is_nullable, column_default FROM information_schema.columns"
            " WHERE table_schema = 'public' ORDER BY table_name, column_name"
        )
        indexes = await connection.fetch(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
            " ORDER BY tablename, indexname"
        )
        constraints = await connection.fetch(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
            " FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
            " ORDER BY 1, 2"
        )
    finally:
        await connection.close()
    return {
        "columns": [tuple(r) for r in columns],
        "indexes": [tuple(r) for r in indexes],
        "constraints": [tuple(r) for r in constraints],
    }


async def test_migrations_go_down_to_nothing_and_up_again_to_the_same_schema(
    database_url: str,
) -> None:
    async with scratch_database(database_url, "allim_migrations", migrate=False) as url:
        await asyncio.to_thread(run_migrations, url)
        upgraded = await _schema(url)
        assert {table for table, *_ in upgraded["columns"]} >= set(Base.metadata.tables)

        await asyncio.to_thread(run_downgrade, url, "base")
        emptied = await _schema(url)
        # only Alembic's own bookkeeping is left, and it holds no revision
        assert {table for table, *_ in emptied["columns"]} == {"alembic_version"}
        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            assert await connection.fetchval("SELECT count(*) FROM alembic_version") == 0
        finally:
            await connection.close()

        await asyncio.to_thread(run_migrations, url)
        assert await _schema(url) == upgraded
        # and a database already at the newest revision is left as it is
        await asyncio.to_thread(run_migrations, url)
        assert await _schema(url) == upgraded
