"""Analytics subcommands: `allim analytics` (the consumer service) and `allim stats ID`.

`allim stats ID` asks the gateway (`GET /v1/alerts/{id}/stats`, a viewer key) by default,
so an operator needs nothing but the gateway's URL and a key; `--database` reads the
rollup straight from PostgreSQL (ALLIM_DATABASE_URL) for when the gateway is not running,
as at the end of `make demo`. Both print the same summary (`reports.terminal`).
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from typing import Any

import httpx
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from analytics.config import load_settings
from analytics.main import serve
from cli.flags import gateway_flags
from common.config import CommonSettings
from common.db import create_engine, session_factory
from common.logs import configure_logging
from reports.rollups import AlertRollup, load_rollup
from reports.terminal import render_report

SubParsers = Any  # argparse's private _SubParsersAction

EXIT_FAILED = 1


class StatsFailed(Exception):
    """The rollup could not be read; the message says why."""


def _analytics(args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_json)
    return serve(settings)


def fetch_rollup(gateway: str, api_key: str, alert_id: uuid.UUID) -> AlertRollup:
    """The `AlertRollup` of `alert_id` from the gateway's stats endpoint."""
    url = f"{gateway.rstrip('/')}/v1/alerts/{alert_id}/stats"
    try:
        response = httpx.get(url, headers={"X-API-Key": api_key}, timeout=10.0)
    except httpx.HTTPError as exc:
        raise StatsFailed(f"The gateway at '{gateway}' did not answer: {exc}") from exc
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise StatsFailed(f"The gateway answered {response.status_code}: {detail}")
    try:
        return AlertRollup.model_validate_json(response.content)
    except ValidationError as exc:
        raise StatsFailed(f"The gateway's answer is not a stats document: {exc}") from exc


async def read_rollup(database_url: str, alert_id: uuid.UUID) -> AlertRollup:
    """The `AlertRollup` of `alert_id` read from the database."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_factory(engine)() as session:
            rollup = await load_rollup(session, alert_id)
    except OSError as exc:
        raise StatsFailed(f"The database did not answer: {exc}") from exc
    finally:
        await engine.dispose()
    if rollup is None:
        raise StatsFailed(f"Alert '{alert_id}' is unknown.")
    return rollup


def _stats(args: argparse.Namespace) -> int:
    errors = Console(stderr=True)
    try:
        try:
            alert_id = uuid.UUID(args.alert_id)
        except ValueError as exc:
            raise StatsFailed(f"'{args.alert_id}' is not an alert id (a UUID).") from exc
        if args.database:
            rollup = asyncio.run(read_rollup(CommonSettings().database_url, alert_id))
        else:
            if not args.api_key:
                raise StatsFailed("An API key is needed: pass --api-key or set ALLIM_API_KEY.")
            rollup = fetch_rollup(args.gateway, args.api_key, alert_id)
    except StatsFailed as exc:
        errors.print(f"[red]stats failed:[/red] {escape(str(exc))}", soft_wrap=True)
        return EXIT_FAILED
    if args.json:
        print(rollup.model_dump_json())
    else:
        render_report(rollup, Console())
    return 0


def register(subparsers: SubParsers) -> None:
    """Add `analytics` and `stats`."""
    analytics = subparsers.add_parser(
        "analytics",
        help="run the analytics consumer: read rates, forwards, rollups, alerts.stats",
    )
    analytics.set_defaults(handler=_analytics)

    stats = subparsers.add_parser(
        "stats",
        help="print an alert's delivery and read summary with a chart of reads",
        description=(
            "Print delivered, failed, duration, messages/s, readers, forwards and read rate of "
            "one alert, and a chart of reads over time. Reads the gateway's "
            "GET /v1/alerts/{id}/stats, or the database with --database."
        ),
    )
    stats.add_argument("alert_id", metavar="ID", help="the alert id")
    gateway_flags(stats, "a viewer or operator API key")
    stats.add_argument(
        "--database",
        action="store_true",
        help="read the database (ALLIM_DATABASE_URL) instead of the gateway",
    )
    stats.add_argument("--json", action="store_true", help="print the rollup as JSON")
    stats.set_defaults(handler=_stats)
