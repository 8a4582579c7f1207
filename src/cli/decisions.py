"""The commands that act on one alert by its id: `allim approve ID`, `allim reject ID
--reason TEXT`, `allim test ID`, `allim pause ID` and `allim resume ID`.

They talk to the gateway over HTTP like `allim send`: approving and rejecting need an
approver's key who did not write the alert; a test send, a pause and a resume an
operator's.

Exit status: 0 done, 1 refused or unreachable (the gateway's reason is printed).
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


def _post(args: argparse.Namespace, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
    try:
        uuid.UUID(args.alert_id)
    except ValueError as exc:
        raise CommandFailed(f"'{args.alert_id}' is not an alert id.") from exc
    with gateway_client(args) as client:
        try:
            response = client.post(f"/v1/alerts/{args.alert_id}/{path}", json=body)
        except httpx.TransportError as exc:
            raise CommandFailed(f"The gateway did not answer: {exc}") from exc
    if response.status_code not in (200, 202):
        raise CommandFailed(problem_text(response))
    answer: dict[str, Any] = response.json()
    return answer


def _decide(verb: str, args: argparse.Namespace, body: dict[str, Any] | None) -> int:
    console = Console(stderr=True)
    try:
        state = _post(args, verb, body)
    except CommandFailed as exc:
        console.print(f"[red]{verb} failed:[/red] {escape(str(exc))}", soft_wrap=True)
        return EXIT_FAILED
    reason = f" ({state['status_reason']})" if state.get("status_reason") else ""
    print(f"{state['id']} {state['status']}{reason}")
    return 0


def _approve(args: argparse.Namespace) -> int:
    return _decide("approve", args, None)


def _reject(args: argparse.Namespace) -> int:
    return _decide("reject", args, {"reason": args.reason})


def _pause(args: argparse.Namespace) -> int:
    return _decide("pause", args, None)


def _resume(args: argparse.Namespace) -> int:
    return _decide("resume", args, None)


def _test(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    try:
        sent = _post(args, "test", None)
    except CommandFailed as exc:
        console.print(f"[red]test failed:[/red] {escape(str(exc))}", soft_wrap=True)
        return EXIT_FAILED
    print(
        f"test send {sent['id']} of {sent['test_of']}: {sent['recipients']} test recipients "
        f"({sent['status']}); follow it with `allim watch {sent['id']}`"
    )
    return 0


def register(subparsers: SubParsers) -> None:
    """Add `approve`, `reject`, `test`, `pause` and `resume`."""
    approve = subparsers.add_parser(
        "approve", help="approve an alert someone else wrote: it is sent (or scheduled)"
    )
    approve.add_argument("alert_id", metavar="ID", help="the alert id")
    gateway_flags(approve, "an approver's API key")
    approve.set_defaults(handler=_approve)

    reject = subparsers.add_parser("reject", help="reject an alert someone else wrote")
    reject.add_argument("alert_id", metavar="ID", help="the alert id")
    reject.add_argument("--reason", required=True, help="what the author should change")
    gateway_flags(reject, "an approver's API key")
    reject.set_defaults(handler=_reject)

    test = subparsers.add_parser(
        "test", help="send an alert to the test recipients only (also while it waits)"
    )
    test.add_argument("alert_id", metavar="ID", help="the alert id")
    gateway_flags(test, "an operator API key")
    test.set_defaults(handler=_test)

    for verb, handler, summary in (
        ("pause", _pause, "pause a queued, scheduled or sending alert"),
        ("resume", _resume, "resume a paused alert where it stopped"),
    ):
        command = subparsers.add_parser(verb, help=summary)
        command.add_argument("alert_id", metavar="ID", help="the alert id")
        gateway_flags(command, "an operator API key")
        command.set_defaults(handler=handler)
