"""`allim broadcaster [--role planner|sender|all]`: the broadcast engine in the foreground."""

from __future__ import annotations

import argparse
from typing import Any

from common.logs import configure_logging

SubParsers = Any  # argparse's private _SubParsersAction


def _broadcaster(args: argparse.Namespace) -> int:
    from broadcaster.config import load_settings
    from broadcaster.main import serve

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_json)
    return serve(settings, args.role)


def register(subparsers: SubParsers) -> None:
    """Add `broadcaster`."""
    parser = subparsers.add_parser(
        "broadcaster",
        help="run the planner and/or the senders (SIGTERM stops them gracefully)",
    )
    parser.add_argument(
        "--role",
        choices=("planner", "sender", "all"),
        default="all",
        help="planner: alerts into shards; sender: shards to the provider; all: both",
    )
    parser.set_defaults(handler=_broadcaster)
