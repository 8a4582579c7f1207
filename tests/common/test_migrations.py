import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.admin import run_migrations
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


async def test_migrations_are_idempotent(database_url: str) -> None:
    await asyncio.to_thread(run_migrations, database_url)
