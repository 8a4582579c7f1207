"""allim's databases on a PostgreSQL server: the schema moved up or down with Alembic, and
throwaway databases (created, migrated, dropped) for the test suite and the benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
from sqlalchemy.engine import make_url

from common.db import asyncpg_dsn

if TYPE_CHECKING:
    from alembic.config import Config


def migrations_dir() -> Path:
    """Where the Alembic scripts are: ALLIM_MIGRATIONS_DIR, or `migrations/` of the checkout."""
    configured = os.environ.get("ALLIM_MIGRATIONS_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "migrations"


def _alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    folder = migrations_dir()
    if not (folder / "env.py").is_file():
        raise SystemExit(f"Migrations folder '{folder}' has no env.py; set ALLIM_MIGRATIONS_DIR.")
    config = Config()
    config.set_main_option("script_location", str(folder))
    config.set_main_option("sqlalchemy.url", database_url)
    return config


def run_migrations(database_url: str, revision: str = "head") -> None:
    """Upgrade the database at `database_url` to `revision`."""
    from alembic import command

    command.upgrade(_alembic_config(database_url), revision)


def run_downgrade(database_url: str, revision: str) -> None:
    """Downgrade the database at `database_url` to `revision` ("base": no schema at all)."""
    from alembic import command

    command.downgrade(_alembic_config(database_url), revision)


async def _on_server(server_url: str, statement: str) -> None:
    # CREATE and DROP DATABASE run outside a transaction, from the server's own database
    admin = make_url(server_url).set(database="postgres").render_as_string(hide_password=False)
    connection = await asyncpg.connect(asyncpg_dsn(admin))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def scratch_database(
    server_url: str, prefix: str, *, migrate: bool = True
) -> AsyncIterator[str]:
    """A new database named `<prefix>_<random>` on the server of `server_url`, at the newest
    schema unless `migrate` is False; its URL. Dropped on the way out, also on errors."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    await _on_server(server_url, f'CREATE DATABASE "{name}"')
    try:
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        if migrate:
            await asyncio.to_thread(run_migrations, url)
        yield url
    finally:
        await _on_server(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
