"""`allim audit`: the gateway's audit log (`GET /v1/audit`), newest first, one action a line.

It talks to the gateway with an operator API key (`--gateway`, `--api-key`), following the
pages' cursors until `--limit` rows are shown. Exit status: 0 shown, 1 the command failed.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape

from cli.flags import gateway_flags
from cli.operator import EXIT_FAILED, CommandFailed, problem_text

SubParsers = Any  # argparse's private _SubParsersAction

PAGE_SIZE = 200


def entries(client: httpx.Client, filters: dict[str, str], limit: int) -> Iterator[dict[str, Any]]:
    """Up to `limit` audit rows matching `filters`, newest first, page by page."""
    cursor: str | None = None
    shown = 0
    while shown < limit:
        params = {**filters, "limit": str(min(PAGE_SIZE, limit - shown))}
        if cursor is not None:
            params["cursor"] = cursor
        try:
            response = client.get("/v1/audit", params=params)
        except httpx.TransportError as exc:
            raise CommandFailed(f"The gateway did not answer: {exc}") from exc
        if response.status_code != 200:
            raise CommandFailed(problem_text(response))
        page = response.json()
        for entry in page["items"]:
            shown += 1
            yield entry
        cursor = page["next_cursor"]
        if cursor is None:
            return


def line(entry: dict[str, Any]) -> str:
    """One row as a tab-separated line: time, actor, action, alert, detail."""
    detail = json.dumps(entry["detail"], ensure_ascii=False, sort_keys=True)
    return "\t".join(
        (entry["at"], entry["actor"], entry["action"], entry["alert_id"] or "-", detail)
    )


def _audit(args: argparse.Namespace) -> int:
    errors = Console(stderr=True)
    filters = {
        name: value
        for name, value in (
            ("alert_id", args.alert),
            ("actor", args.actor),
            ("action", args.action),
        )
        if value is not None
    }
    try:
        if args.alert is not None:
            uuid.UUID(args.alert)
        if not args.api_key:
            raise CommandFailed("An API key is needed: pass --api-key or set ALLIM_API_KEY.")
        with httpx.Client(
            base_url=args.gateway.rstrip("/"), headers={"X-API-Key": args.api_key}, timeout=30.0
        ) as client:
            for entry in entries(client, filters, args.limit):
                print(json.dumps(entry, ensure_ascii=False) if args.json else line(entry))
    except ValueError:
        errors.print(f"[red]audit failed:[/red] '{escape(args.alert)}' is not an alert id.")
        return EXIT_FAILED
    except CommandFailed as exc:
        errors.print(f"[red]audit failed:[/red] {escape(str(exc))}", soft_wrap=True)
        return EXIT_FAILED
    return 0


def register(subparsers: SubParsers) -> None:
    """Add `audit`."""
    command = subparsers.add_parser(
        "audit",
        help="show the audit log: who created, cancelled, opted out, made or revoked keys",
        description="Newest first; tab-separated time, actor, action, alert and detail. "
        "Exit status 0: shown; 1: the command failed.",
    )
    command.add_argument("--alert", metavar="ID", help="only this alert's actions")
    command.add_argument("--actor", help="only this actor's actions (a key's name, cli:<user>)")
    command.add_argument("--action", help="only this action, as alert.cancel")
    command.add_argument("--limit", type=int, default=50, help="show at most this many (50)")
    command.add_argument("--json", action="store_true", help="print each row as a JSON line")
    gateway_flags(command, "an operator API key")
    command.set_defaults(handler=_audit)
