"""`allim preview --file FILE`: what an alert would do, without sending or storing it.

Posts the file (a JSON body of `POST /v1/alerts`, or a CAP 1.2 alert) to
`POST /v1/alerts:preview` and prints its recipients by district, the message as the
recipient sees it with its character counts against the dealer's limits, the warnings and
the estimated duration.

Exit status: 0 the preview was printed, 1 the gateway refused the alert or was unreachable.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape

from cli.flags import gateway_flags
from cli.operator import (
    EXIT_FAILED,
    CommandFailed,
    SubParsers,
    gateway_client,
    problem_text,
    request_from_file,
)

PREVIEW_PATH = "/v1/alerts:preview"


def fetch_preview(client: httpx.Client, content: bytes, content_type: str) -> dict[str, Any]:
    """The gateway's preview of the alert in `content`."""
    try:
        response = client.post(
            PREVIEW_PATH, content=content, headers={"Content-Type": content_type}
        )
    except httpx.TransportError as exc:
        raise CommandFailed(f"The gateway did not answer: {exc}") from exc
    if response.status_code != 200:
        raise CommandFailed(problem_text(response))
    answer: dict[str, Any] = response.json()
    return answer


def _counted(counted: dict[str, int]) -> str:
    mark = "" if counted["length"] <= counted["limit"] else "  OVER THE LIMIT"
    return f"{counted['length']}/{counted['limit']}{mark}"


def render(preview: dict[str, Any]) -> str:
    """The preview as text for a terminal."""
    message = preview["message"]
    lines = [f"Recipients: {preview['recipients']:,}"]
    lines += [
        f"  {row['district'] or '(no district)'}: {row['recipients']:,}"
        for row in preview["by_district"]
    ]
    lines += [
        f"Message ({message['message_type']}):",
        f"  title [{_counted(message['title_chars'])}]: {message['title']}",
        f"  body [{_counted(message['body_chars'])}]:",
        *(f"    {line}" for line in message["body"].splitlines()),
        f"  buttons [{_counted(message['button_count'])}]:",
        *(
            f"    {b['name']} [{_counted(b['name_chars'])}] -> {b['link']}"
            f" [{_counted(b['link_chars'])}]"
            for b in message["buttons"]
        ),
    ]
    estimate = preview["estimate"]
    lines.append(f"Starts: {estimate['starts_at']}")
    if estimate["seconds"] is None:
        lines.append(f"Duration: not estimated. {estimate['note']}")
    else:
        lines.append(
            f"Duration: about {estimate['seconds']:,.1f} s, until {estimate['ends_at']} "
            f"({estimate['note']})"
        )
    warnings = preview["warnings"]
    lines.append("Warnings:" if warnings else "Warnings: none")
    lines += [f"  {w['code']}: {w['message']}" for w in warnings]
    return "\n".join(lines)


def _preview(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    try:
        content, content_type = request_from_file(Path(args.file))
        with gateway_client(args) as client:
            preview = fetch_preview(client, content, content_type)
    except CommandFailed as exc:
        console.print(f"[red]preview failed:[/red] {escape(str(exc))}", soft_wrap=True)
        return EXIT_FAILED
    print(json.dumps(preview, ensure_ascii=False) if args.json else render(preview))
    return 0


def register(subparsers: SubParsers) -> None:
    """Add `preview`."""
    parser = subparsers.add_parser(
        "preview",
        help="show what an alert would do (reach, message, warnings, duration); stores nothing",
        description="Exit status 0: the preview was printed; 1: refused or unreachable.",
    )
    parser.add_argument(
        "--file", required=True, help="a JSON body of POST /v1/alerts, or a CAP 1.2 XML alert"
    )
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    gateway_flags(parser, "an operator API key")
    parser.set_defaults(handler=_preview)
