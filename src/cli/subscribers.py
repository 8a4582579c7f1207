"""`allim import FILE`: stream a subscriber file to the gateway, with a progress bar.

The file is sent as it is read (never loaded whole) to `POST /v1/subscribers:import`;
the gateway answers with a report of the rows accepted and rejected, which is shown as a
table (or printed as JSON with `--json`). Exit status: 0 when every row was accepted,
3 when some were rejected, 1 when the import failed as a whole.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from cli.flags import gateway_flags
from cli.operator import problem_text

SubParsers = Any  # argparse's private _SubParsersAction

CHUNK_BYTES = 256 * 1024
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}
SUFFIXES = {".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson"}
EXIT_FAILED = 1
EXIT_REJECTED = 3
SHOWN_ERRORS = 20


class ImportFailed(Exception):
    """The import did not happen; the message says why."""


def file_format(path: Path, declared: str | None) -> str:
    """`csv` or `ndjson`: as declared, or from the file name's suffix."""
    if declared is not None:
        return declared
    found = SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise ImportFailed(
            f"Cannot tell the format of '{path.name}' from its suffix; "
            "pass --format csv or --format ndjson."
        )
    return found


def _chunks(path: Path, progress: Progress, task: TaskID) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            progress.update(task, advance=len(chunk))
            yield chunk
    progress.update(task, description="importing")


def upload(path: Path, gateway: str, api_key: str, fmt: str, console: Console) -> dict[str, Any]:
    """Send `path` to the gateway with a progress bar; the gateway's report."""
    url = f"{gateway.rstrip('/')}/v1/subscribers:import"
    headers = {"X-API-Key": api_key, "Content-Type": CONTENT_TYPES[fmt]}
    # the upsert runs after the last byte: allow the gateway time to answer
    timeout = httpx.Timeout(30.0, read=900.0)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("uploading", total=path.stat().st_size)
        try:
            with httpx.Client(timeout=timeout) as client:
                response = client.post(url, content=_chunks(path, progress, task), headers=headers)
        except httpx.HTTPError as exc:
            raise ImportFailed(f"The gateway at {gateway} did not answer: {exc}") from exc
    if response.status_code != 200:
        raise ImportFailed(problem_text(response))
    report: dict[str, Any] = response.json()
    return report


def show(report: dict[str, Any], console: Console) -> None:
    """The report as a summary table and the first rejected lines."""
    summary = Table(title="import", show_header=False)
    for name in ("accepted", "created", "updated", "unchanged", "opted_out", "rejected"):
        summary.add_row(name.replace("_", " "), f"{report[name]:,}")
    console.print(summary)
    errors = report["errors"]
    if errors:
        rejected = Table("line", "reason", title="rejected lines")
        for error in errors[:SHOWN_ERRORS]:
            rejected.add_row(str(error["line"]), error["reason"])
        console.print(rejected)
        if report["rejected"] > SHOWN_ERRORS:
            console.print(f"... and {report['rejected'] - SHOWN_ERRORS:,} more rejected lines")


def _import(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    try:
        if not args.api_key:
            raise ImportFailed("An API key is needed: pass --api-key or set ALLIM_API_KEY.")
        path = Path(args.file)
        if not path.is_file():
            raise ImportFailed(f"File '{path}' does not exist.")
        report = upload(path, args.gateway, args.api_key, file_format(path, args.format), console)
    except ImportFailed as exc:
        console.print(f"[red]import failed:[/red] {escape(str(exc))}", soft_wrap=True)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        show(report, Console())
    return EXIT_REJECTED if report["rejected"] else 0


def register(subparsers: SubParsers) -> None:
    """Add `import`."""
    command = subparsers.add_parser(
        "import",
        help="import subscribers from a CSV or NDJSON file through the gateway",
        description=(
            "Stream FILE to the gateway's POST /v1/subscribers:import. CSV has a header "
            "recipient_no,district,tags (tags separated by ';'); NDJSON has one object a line. "
            "Exit status 0: all rows accepted; 3: some rejected; 1: the import failed."
        ),
    )
    command.add_argument("file", help="the CSV or NDJSON file")
    gateway_flags(command, "an operator API key")
    command.add_argument(
        "--format", choices=sorted(CONTENT_TYPES), help="file format (default: from the suffix)"
    )
    command.add_argument("--json", action="store_true", help="print the report as JSON")
    command.set_defaults(handler=_import)
