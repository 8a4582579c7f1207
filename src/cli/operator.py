"""`allim send` (an alert from flags, a JSON file or a CAP 1.2 file) and `allim watch ID`.

Both talk to the gateway over HTTP with an API key: `--gateway` ($ALLIM_GATEWAY_URL) and
`--api-key` ($ALLIM_API_KEY). `send` carries an Idempotency-Key (a fresh one unless given)
and retries transport errors and 5xx with it, so a retry never makes a second alert.
`watch` follows `GET /v1/alerts/{id}/events` with a live progress bar until the broadcast
ends, reconnecting when the stream drops.

An alert that waits for approval is said to: `send` prints how to approve it.

Exit status: 0 sent / completed (or accepted but not broadcast), 1 the command failed,
3 the broadcast ended cancelled or failed.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.flags import gateway_flags
from reports.terminal import percent

SubParsers = Any  # argparse's private _SubParsersAction

EXIT_FAILED = 1
EXIT_NOT_DELIVERED = 3
SEND_ATTEMPTS = 4
WATCH_RECONNECTS = 10
CAP_SUFFIXES = frozenset({".xml", ".cap"})


class CommandFailed(Exception):
    """The command could not do its work; the message says why."""


def problem_text(response: httpx.Response) -> str:
    """A one-paragraph account of an error response (problem+json when it is one)."""
    try:
        problem = response.json()
        text = f"{response.status_code} {problem['title']}: {problem['detail']}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code}: {response.text[:500]}"
    for error in problem.get("errors") or []:
        text += f"\n  {error.get('field')}: {error.get('message')}"
    return text


def alert_from_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The JSON body an operator described with flags."""
    missing = [f"--{n}" for n in ("title", "body", "category") if getattr(args, n) is None]
    if missing:
        raise CommandFailed(f"Give {', '.join(missing)} (or --file).")
    if not args.all and not args.district and not args.tag:
        raise CommandFailed("Give the audience: --all, or --district and/or --tag.")
    buttons = []
    for spec in args.button:
        name, sep, link = spec.partition("=")
        if not sep:
            raise CommandFailed(f"--button '{spec}' is not NAME=URL.")
        buttons.append({"name": name, "link": link})
    audience: Any = "all" if args.all else {"districts": args.district, "tags": args.tag}
    body: dict[str, Any] = {
        "title": args.title,
        "body": args.body,
        "category": args.category,
        "buttons": buttons,
        "audience": audience,
    }
    for name in ("send_at", "expires_at"):
        if getattr(args, name) is not None:
            body[name] = getattr(args, name)
    return body


def request_from_file(path: Path) -> tuple[bytes, str]:
    """The file's bytes and content type: CAP 1.2 XML by suffix or a leading '<', else JSON."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CommandFailed(f"Cannot read '{path}': {exc.strerror}.") from exc
    if path.suffix.lower() in CAP_SUFFIXES or data.lstrip().startswith(b"<"):
        return data, "application/cap+xml"
    return data, "application/json"


def send(
    client: httpx.Client, content: bytes, content_type: str, idempotency_key: str
) -> dict[str, Any]:
    """POST the alert, retrying transport errors and 5xx with the same Idempotency-Key."""
    headers = {"Content-Type": content_type, "Idempotency-Key": idempotency_key}
    for attempt in range(1, SEND_ATTEMPTS + 1):
        try:
            response = client.post("/v1/alerts", content=content, headers=headers)
        except httpx.TransportError as exc:
            if attempt == SEND_ATTEMPTS:
                raise CommandFailed(f"The gateway did not answer: {exc}") from exc
        else:
            if response.status_code in (200, 202):
                accepted: dict[str, Any] = response.json()
                return accepted
            if response.status_code < 500 or attempt == SEND_ATTEMPTS:
                raise CommandFailed(problem_text(response))
        time.sleep(0.5 * 2**attempt)
    raise CommandFailed("unreachable: the loop returns or raises")


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs of a text/event-stream; comments and keep-alives skipped."""
    event, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)


def watch(client: httpx.Client, alert_id: str, console: Console) -> dict[str, Any]:
    """Follow the alert's events with a progress bar; its last state."""
    columns = (
        TextColumn("[bold]{task.fields[status]:<13}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]:,}  read {task.fields[read]}"),
        TimeElapsedColumn(),
    )
    last: dict[str, Any] | None = None
    failures = 0
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(alert_id, total=None, status="connecting", failed=0, read="-")
        while True:
            try:
                with client.stream(
                    "GET",
                    f"/v1/alerts/{alert_id}/events",
                    timeout=httpx.Timeout(10.0, read=60.0),
                ) as response:
                    if response.status_code != 200:
                        response.read()
                        raise CommandFailed(problem_text(response))
                    failures = 0
                    for event, data in sse_events(response.iter_lines()):
                        last = data
                        progress.update(
                            task,
                            total=data["targeted"] or None,
                            completed=data["delivered"] + data["failed"],
                            status=data["status"],
                            failed=data["failed"],
                            read=percent(data.get("read_rate")),
                        )
                        if event == "end":
                            return data
            except httpx.TransportError as exc:
                failures += 1
                if failures > WATCH_RECONNECTS:
                    raise CommandFailed(f"Lost the event stream: {exc}") from exc
            progress.update(task, status="reconnecting")
            time.sleep(min(2.0**failures, 10.0) if failures else 0.5)
            if last is not None and last["status"] in ("completed", "cancelled", "failed"):
                return last


def gateway_client(args: argparse.Namespace) -> httpx.Client:
    """A client of the gateway with the API key of `--api-key` (`CommandFailed` without one)."""
    if not args.api_key:
        raise CommandFailed("An API key is needed: pass --api-key or set ALLIM_API_KEY.")
    return httpx.Client(
        base_url=args.gateway.rstrip("/"), headers={"X-API-Key": args.api_key}, timeout=30.0
    )


def _summary(state: dict[str, Any]) -> str:
    return (
        f"{state['id']}: {state['status']} - targeted {state['targeted']:,}, delivered "
        f"{state['delivered']:,}, failed {state['failed']:,}, read rate "
        f"{percent(state.get('read_rate'))}"
    )


def _exit_status(state: dict[str, Any]) -> int:
    return EXIT_NOT_DELIVERED if state["status"] in ("cancelled", "failed") else 0


def _send(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    try:
        if args.file is not None:
            content, content_type = request_from_file(Path(args.file))
        else:
            content, content_type = json.dumps(alert_from_flags(args)).encode(), "application/json"
        with gateway_client(args) as client:
            accepted = send(client, content, content_type, args.idempotency_key)
            if args.json:
                print(json.dumps(accepted))
            else:
                print(f"{accepted['id']} {accepted['status']} {accepted['status_url']}")
            if accepted["status"] == "pending_approval":
                console.print(
                    "It waits for approval: an approver other than you runs "
                    f"`allim approve {accepted['id']}` (or `allim reject`); "
                    f"`allim test {accepted['id']}` sends it to the test recipients first.",
                    soft_wrap=True,
                )
            if not args.watch:
                return 0
            state = watch(client, accepted["id"], console)
    except CommandFailed as exc:
        console.print(f"[red]send failed:[/red] {escape(str(exc))}", soft_wrap=True)
        return EXIT_FAILED
    print(_summary(state))
    return _exit_status(state)


def _watch(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    try:
        uuid.UUID(args.alert_id)
        with gateway_client(args) as client:
            state = watch(client, args.alert_id, console)
    except ValueError:
        console.print(f"[red]watch failed:[/red] '{escape(args.alert_id)}' is not an alert id.")
        return EXIT_FAILED
    except CommandFailed as exc:
        console.print(f"[red]watch failed:[/red] {escape(str(exc))}", soft_wrap=True)
        return EXIT_FAILED
    print(_summary(state))
    return _exit_status(state)


def register(subparsers: SubParsers) -> None:
    """Add `send` and `watch`."""
    send_parser = subparsers.add_parser(
        "send",
        help="send an alert (from flags, a JSON file or a CAP 1.2 file)",
        description="Exit status 0: accepted (with --watch: completed); 1: refused or "
        "unreachable; 3: with --watch, the broadcast ended cancelled or failed.",
    )
    source = send_parser.add_argument_group("the alert, unless --file gives it")
    source.add_argument("--file", help="a JSON body of POST /v1/alerts, or a CAP 1.2 XML alert")
    source.add_argument("--title", help="at most 50 characters")
    source.add_argument("--body", help="at most 1,300 characters")
    source.add_argument("--category", choices=("emergency", "public", "promotional"))
    source.add_argument(
        "--button",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="a button (up to 4; allim adds the tracked 'read more' one)",
    )
    source.add_argument("--all", action="store_true", help="send to every subscriber")
    source.add_argument("--district", action="append", default=[], help="a district (repeat)")
    source.add_argument("--tag", action="append", default=[], help="a tag (repeat)")
    source.add_argument("--send-at", help="ISO 8601 time with a zone; now when absent")
    source.add_argument("--expires-at", help="ISO 8601 time with a zone")
    send_parser.add_argument(
        "--idempotency-key",
        default=str(uuid.uuid4()),
        help="makes re-running the command safe (default: a fresh key per run)",
    )
    send_parser.add_argument("--watch", action="store_true", help="then follow its progress")
    send_parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    gateway_flags(send_parser, "an operator API key")
    send_parser.set_defaults(handler=_send)

    watch_parser = subparsers.add_parser(
        "watch",
        help="follow an alert's broadcast with a live progress bar until it ends",
        description="Exit status 0: completed (or not broadcast); 1: the command failed; "
        "3: the broadcast ended cancelled or failed.",
    )
    watch_parser.add_argument("alert_id", metavar="ID", help="the alert id")
    gateway_flags(watch_parser, "a viewer API key")
    watch_parser.set_defaults(handler=_watch)
