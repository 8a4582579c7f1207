"""`allim`: one console script, a subcommand per service and per operator task.

Each subcommand lives in the module of its group and registers itself here through
`COMMAND_GROUPS`: `cli.admin` (migrate, topics, settings), one module per service (`cli.gateway`,
`cli.broadcaster`, `cli.stats` for analytics, `cli.sandbox`), the operator's tasks
(`cli.operator`: send, watch; `cli.preview`: preview; `cli.subscribers`: import;
`cli.decisions`: approve, reject, test, pause, resume; `cli.recipients`: recipients;
`cli.followups`: resend, followup;
`cli.accounts`: users, keys; `cli.audit`: audit) and `cli.demo`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from pydantic import ValidationError

from cli import (
    accounts,
    admin,
    audit,
    broadcaster,
    console,
    decisions,
    demo,
    followups,
    gateway,
    operator,
    preview,
    recipients,
    sandbox,
    stats,
    subscribers,
)
from common.config import CommonSettings

# Each group module has `register(subparsers)`; a parsed command carries `handler(args) -> int`.
COMMAND_GROUPS: tuple[ModuleType, ...] = (
    admin,
    stats,
    sandbox,
    broadcaster,
    subscribers,
    gateway,
    accounts,
    operator,
    decisions,
    followups,
    recipients,
    preview,
    audit,
    demo,
    console,
)

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="allim", description="Broadcast public alerts and measure how many read them."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; the exit status is its result."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except ValidationError as exc:
        if exc.title not in _settings_names(CommonSettings):
            raise
        # a bad ALLIM_* variable or .env line: say which, without a traceback
        print(f"allim {args.command}: invalid settings: {exc}", file=sys.stderr)
        return 2


def _settings_names(settings: type[CommonSettings]) -> set[str]:
    """The names of `settings` and of every settings class built on it."""
    names = {settings.__name__}
    for subclass in settings.__subclasses__():
        names |= _settings_names(subclass)
    return names


if __name__ == "__main__":
    sys.exit(main())
