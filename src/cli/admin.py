"""Set-up subcommands: `allim migrate` and `allim topics`."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import re
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings

from cli.databases import run_migrations
from common.config import CommonSettings, settings_table
from common.logs import configure_logging
from common.topics import ensure_topics

SubParsers = Any  # argparse's private _SubParsersAction


def _migrate(args: argparse.Namespace) -> int:
    settings = CommonSettings()
    configure_logging(settings.log_level, settings.log_json)
    # Alembic announces every plugin it loads at INFO; the migrations themselves stay visible
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    run_migrations(settings.database_url, args.revision)
    return 0


def _topics(args: argparse.Namespace) -> int:
    settings = CommonSettings()
    configure_logging(settings.log_level, settings.log_json)
    created = asyncio.run(ensure_topics(settings.kafka_bootstrap))
    print("created: " + (", ".join(created) if created else "none (all exist)"))
    return 0


# (title, "module:Class") of every settings class, in the README's order
SETTINGS_CLASSES: tuple[tuple[str, str], ...] = (
    ("Every service", "common.config:CommonSettings"),
    ("Gateway (`allim gateway`)", "gateway.config:GatewaySettings"),
    ("Broadcaster (`allim broadcaster`)", "broadcaster.config:BroadcasterSettings"),
    ("Analytics (`allim analytics`)", "analytics.config:AnalyticsSettings"),
    ("Sandbox (`allim sandbox`)", "sandbox.config:SandboxSettings"),
)
README_START = "<!-- settings:start -->"
README_END = "<!-- settings:end -->"


def settings_markdown() -> str:
    """The README's settings tables: one per settings class, service fields only."""
    common = {name for name, _, _ in settings_table(CommonSettings)}
    parts = []
    for title, target in SETTINGS_CLASSES:
        module, _, name = target.partition(":")
        cls: type[BaseSettings] = getattr(importlib.import_module(module), name)
        rows = [r for r in settings_table(cls) if cls is CommonSettings or r[0] not in common]
        lines = [f"### {title}", "", "| name | default | meaning |", "| --- | --- | --- |"]
        lines += [f"| `{n}` | `{d}` | {m} |" for n, d, m in rows]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def write_readme_settings(readme: Path) -> bool:
    """Replace the settings region of `readme`; True when it changed."""
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"README '{readme}' has no '{README_START}' ... '{README_END}' region.")
    block = f"{README_START}\n{settings_markdown()}\n{README_END}"
    updated = pattern.sub(lambda _: block, text)
    readme.write_text(updated, encoding="utf-8")
    return updated != text


def _settings(args: argparse.Namespace) -> int:
    if args.write_readme:
        changed = write_readme_settings(Path(args.write_readme))
        print("README settings table " + ("updated" if changed else "already current"))
    else:
        print(settings_markdown())
    return 0


def register(subparsers: SubParsers) -> None:
    """Add `migrate` and `topics`."""
    migrate = subparsers.add_parser("migrate", help="upgrade the database schema (Alembic)")
    migrate.add_argument("revision", nargs="?", default="head", help="target revision")
    migrate.set_defaults(handler=_migrate)
    topics = subparsers.add_parser("topics", help="create the Kafka topics that are missing")
    topics.set_defaults(handler=_topics)
    settings = subparsers.add_parser("settings", help="print every setting as Markdown tables")
    settings.add_argument("--write-readme", metavar="README", help="rewrite its settings region")
    settings.set_defaults(handler=_settings)
