"""`allim resend ID` and `allim followup ID`: a linked alert to those the first one failed,
or a correction or update for those it reached.

They talk to the gateway over HTTP like `allim send`, with an operator's key, and carry an
Idempotency-Key (a fresh one unless given), so running one again with the same key makes no
second follow-up. The follow-up waits for approval like any alert; the command says so.

Exit status: 0 created, 1 refused or unreachable (the gateway's reason is printed).
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape

from cli.flags import gateway_flags
from cli.operator import EXIT_FAILED, CommandFailed, gateway_client, problem_text

SubParsers = Any  # argparse's private _SubParsersAction


def _create(args: argparse.Namespace, path: str, body: dict[str, Any]) -> int:
    console = Console(stderr=True)
    try:
        uuid.UUID(args.alert_id)
        with gateway_client(args) as client:
            response = client.post(
                f"/v1/alerts/{args.alert_id}/{path}",
                json=body,
                headers={"Idempotency-Key": args.idempotency_key},
            )
        if response.status_code not in (200, 202):
            raise CommandFailed(problem_text(response))
    except ValueError:
        console.print(f"[red]{path} failed:[/red] '{escape(args.alert_id)}' is not an alert id.")
        return EXIT_FAILED
    except (CommandFailed, httpx.TransportError) as exc:
        console.print(f"[red]{path} failed:[/red] {escape(str(exc))}", soft_wrap=True)
        return EXIT_FAILED
    made = response.json()
    print(f"{made['id']} {made['status']} {made['relation']} to {made['recipients']} recipients")
    if made["status"] == "pending_approval":
        console.print(
            f"It waits for approval: an approver other than you runs `allim approve {made['id']}`.",
            soft_wrap=True,
        )
    return 0


def _resend(args: argparse.Namespace) -> int:
    outcomes = ["failed", "not_sent"] if args.not_sent else ["failed"]
    body: dict[str, Any] = {"outcomes": outcomes}
    if args.code:
        body["codes"] = args.code
    return _create(args, "resend", body)


def _followup(args: argparse.Namespace) -> int:
    body = {
        "kind": args.kind,
        "title": args.title,
        "body": args.body,
        "audience": args.audience,
        "mark": not args.no_mark,
    }
    return _create(args, "followup", body)


def register(subparsers: SubParsers) -> None:
    """Add `resend` and `followup`."""
    resend = subparsers.add_parser(
        "resend", help="send an alert again to those it failed, as a linked alert"
    )
    resend.add_argument("alert_id", metavar="ID", help="the alert id")
    resend.add_argument(
        "--code",
        type=int,
        action="append",
        default=[],
        help="only failures with this dealer code (repeat; default: all but 3018-3020)",
    )
    resend.add_argument(
        "--not-sent", action="store_true", help="also those no batch reached (it has ended)"
    )
    followup = subparsers.add_parser(
        "followup", help="correct or update an alert for those it reached (it has ended)"
    )
    followup.add_argument("alert_id", metavar="ID", help="the alert id")
    followup.add_argument("--kind", choices=("correction", "update"), default="correction")
    followup.add_argument("--title", required=True, help="the new title (at most 50)")
    followup.add_argument("--body", required=True, help="the new body")
    followup.add_argument(
        "--audience",
        choices=("delivered", "readers"),
        default="delivered",
        help="everyone it reached, or everyone who opened it",
    )
    followup.add_argument("--no-mark", action="store_true", help="no [정정] before the title")
    for parser, handler in ((resend, _resend), (followup, _followup)):
        parser.add_argument(
            "--idempotency-key",
            default=str(uuid.uuid4()),
            help="makes re-running the command safe (default: a fresh key per run)",
        )
        gateway_flags(parser, "an operator API key")
        parser.set_defaults(handler=handler)
