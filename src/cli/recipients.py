"""`allim recipients ID`: who got an alert, as CSV on standard output, or one recipient.

`--failed` (the default) or `--delivered` picks the list, `--code` narrows the failures to
the dealer's codes; `--number NO` answers for one recipient instead. It talks to the gateway
over HTTP like `allim send`, with a viewer's key or better.

Exit status: 0 printed, 1 refused or unreachable.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape

from cli.flags import gateway_flags
from cli.operator import EXIT_FAILED, CommandFailed, gateway_client, problem_text

SubParsers = Any  # argparse's private _SubParsersAction


def _one(client: httpx.Client, alert_id: str, number: str) -> str:
    response = client.get(f"/v1/alerts/{alert_id}/recipients/{number}")
    if response.status_code != 200:
        raise CommandFailed(problem_text(response))
    found = response.json()
    parts = [found["recipient_no"], found["outcome"]]
    parts += [str(found[k]) for k in ("code", "at", "reason") if found.get(k) is not None]
    return " ".join(parts)


def _csv(client: httpx.Client, alert_id: str, args: argparse.Namespace) -> None:
    params: dict[str, Any] = {"outcome": "delivered" if args.delivered else "failed"}
    if args.code:
        params["code"] = args.code
    with client.stream(
        "GET",
        f"/v1/alerts/{alert_id}/recipients",
        params=params,
        headers={"Accept": "text/csv"},
        timeout=httpx.Timeout(30.0, read=300.0),
    ) as response:
        if response.status_code != 200:
            response.read()
            raise CommandFailed(problem_text(response))
        for chunk in response.iter_bytes():
            sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()


def _recipients(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    try:
        uuid.UUID(args.alert_id)
        with gateway_client(args) as client:
            if args.number:
                print(_one(client, args.alert_id, args.number))
            else:
                _csv(client, args.alert_id, args)
    except ValueError:
        console.print(
            f"[red]recipients failed:[/red] '{escape(args.alert_id)}' is not an alert id."
        )
        return EXIT_FAILED
    except (CommandFailed, httpx.TransportError) as exc:
        console.print(f"[red]recipients failed:[/red] {escape(str(exc))}", soft_wrap=True)
        return EXIT_FAILED
    return 0


def register(subparsers: SubParsers) -> None:
    """Add `recipients`."""
    parser = subparsers.add_parser(
        "recipients", help="who got an alert: failures or deliveries as CSV, or one recipient"
    )
    parser.add_argument("alert_id", metavar="ID", help="the alert id")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--failed", action="store_true", help="the failures (the default)")
    which.add_argument("--delivered", action="store_true", help="the deliveries")
    which.add_argument("--number", metavar="NO", help="one recipient's outcome")
    parser.add_argument(
        "--code", type=int, action="append", default=[], help="only this dealer code (repeat)"
    )
    gateway_flags(parser, "a viewer API key")
    parser.set_defaults(handler=_recipients)
