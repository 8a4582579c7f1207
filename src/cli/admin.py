"""Set-up subcommands: `allim migrate` and `allim topics`."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

from common.config import CommonSettings
from common.logs import configure_logging
from common.topics import ensure_topics

SubParsers = Any  # argparse's private _SubParsersAction


def migrations_dir() -> Path:
    """Where the Alembic scripts are: ALLIM_MIGRATIONS_DIR, or `migrations/` of the checkout."""
    configured = os.environ.get("ALLIM_MIGRATIONS_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "migrations"


def run_migrations(database_url: str, revision: str = "head") -> None:
    """Upgrade the database at `database_url` to `revision`."""
    from alembic import command
    from alembic.config import Config

    folder = migrations_dir()
    if not (folder / "env.py").is_file():
        raise SystemExit(f"Migrations folder '{folder}' has no env.py; set ALLIM_MIGRATIONS_DIR.")
    config = Config()
    config.set_main_option("script_location", str(folder))
    config.set_main_option("sqlalchemy.url", database_url)
    command.upgrade(config, revision)


def _migrate(args: argparse.Namespace) -> int:
    settings = CommonSettings()
    configure_logging(settings.log_level, settings.log_json)
    run_migrations(settings.database_url, args.revision)
    return 0


def _topics(args: argparse.Namespace) -> int:
    settings = CommonSettings()
    configure_logging(settings.log_level, settings.log_json)
    created = asyncio.run(ensure_topics(settings.kafka_bootstrap))
    print("created: " + (", ".join(created) if created else "none (all exist)"))
    return 0


def register(subparsers: SubParsers) -> None:
    """Add `migrate` and `topics`."""
    migrate = subparsers.add_parser("migrate", help="upgrade the database schema (Alembic)")
    migrate.add_argument("revision", nargs="?", default="head", help="target revision")
    migrate.set_defaults(handler=_migrate)
    topics = subparsers.add_parser("topics", help="create the Kafka topics that are missing")
    topics.set_defaults(handler=_topics)
