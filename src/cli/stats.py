"""Analytics subcommands: `allim analytics` (the consumer service) and `allim stats ID`."""

from __future__ import annotations

import argparse
from typing import Any

from common.logs import configure_logging

SubParsers = Any  # argparse's private _SubParsersAction


def _analytics(args: argparse.Namespace) -> int:
    from analytics.config import load_settings
    from analytics.main import serve

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_json)
    serve(settings)
    return 0


def register(subparsers: SubParsers) -> None:
    """Add `analytics` and `stats`."""
    analytics = subparsers.add_parser(
        "analytics",
        help="run the analytics consumer: read rates, forwards, rollups, alerts.stats",
    )
    analytics.set_defaults(handler=_analytics)
