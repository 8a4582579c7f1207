"""Bulk subscriber import: a CSV or NDJSON body streamed through COPY, then one upsert.

The body is read chunk by chunk; each line is checked as it arrives and the good rows go
straight into a `COPY` to a temporary table, so memory stays flat however long the file
is. One statement then upserts the temporary table into `subscribers`, all in one
transaction: a file that is refused as a whole (bad header, client gone) changes nothing.

Formats, by Content-Type:

- `text/csv`: a header line naming the columns `recipient_no` (required), `district`
  and `tags` (optional, in any order); tags are separated by `;`.
- `application/x-ndjson` (or `application/ndjson`, `application/jsonl`): one JSON object a
  line, `{"recipient_no": "010...", "district": "...", "tags": ["...", ...]}`.

A line that breaks a rule (bad number, field too long, wrong field count, bad JSON, not
UTF-8, a number that already came earlier in the file) is rejected by its line number and
the import goes on. Lines are numbered from 1 as in an editor, the CSV header included;
blank lines are skipped. An import updates district and tags of known subscribers but
never re-activates one who opted out: only the subscriber can undo an opt-out.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg
import orjson

from gateway import audit
from gateway.subscribers import SubscriberError, check_district, check_recipient, check_tags

Format = Literal["csv", "ndjson"]
FORMATS: dict[str, Format] = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
}
COLUMNS = ("recipient_no", "district", "tags")
MAX_LINE_BYTES = 4096
MAX_ERRORS = 100
_BOM = b"\xef\xbb\xbf"

Row = tuple[int, str, str | None, list[str]]  # line, recipient_no, district, tags


class ImportRefused(ValueError):
    """The file as a whole cannot be imported; nothing was changed."""


class UnsupportedFormat(ImportRefused):
    """The Content-Type is not one of the import formats."""


def format_of(content_type: str | None) -> Format:
    """The import format of a Content-Type header; `UnsupportedFormat` when there is none."""
    media, _, params = (content_type or "").partition(";")
    found = FORMATS.get(media.strip().lower())
    if found is None:
        raise UnsupportedFormat(
            f"Content-Type '{content_type or ''}' is not an import format; "
            f"send one of {', '.join(FORMATS)}."
        )
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            raise UnsupportedFormat(f"Charset '{value.strip()}' is not supported; send UTF-8.")
    return found


@dataclass(frozen=True)
class RowError:
    """Why one line was rejected."""

    line: int
    reason: str


@dataclass
class ImportReport:
    """What an import did: rows accepted (created, updated, unchanged) and rejected, and why.

    `errors` holds the first `MAX_ERRORS` rejections by line; `rejected` counts them all.
    `opted_out` counts accepted rows whose subscriber had opted out and stays so.
    """

    accepted: int = 0
    rejected: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    opted_out: int = 0
    errors: list[RowError] = field(default_factory=list)

    def reject(self, line: int, reason: str) -> None:
        """Count a rejected line, keeping its reason while there is room."""
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(RowError(line, reason))


async def lines(
    chunks: AsyncIterable[bytes], max_bytes: int = MAX_LINE_BYTES
) -> AsyncIterator[tuple[int, bytes | None]]:
    """(line number, bytes without the line break) of a byte stream; None for a line too long.

    A line longer than `max_bytes` is not kept: what arrives of it is dropped until its end.
    """
    number = 0
    pending = b""
    skipping = False
    async for chunk in chunks:
        if not chunk:
            continue
        parts = (pending + chunk).split(b"\n")
        pending = parts.pop()
        for part in parts:
            number += 1
            line = part.removesuffix(b"\r")
            yield number, None if skipping or len(line) > max_bytes else line
            skipping = False
        if len(pending) > max_bytes + 1:  # + 1: a '\r' may wait for its '\n'
            skipping = True
            pending = b""
    if skipping or pending:
        line = pending.removesuffix(b"\r")
        yield number + 1, None if skipping or len(line) > max_bytes else line


def _csv_fields(text: str) -> list[str]:
    if '"' not in text:
        return text.split(",")
    return next(csv.reader([text], strict=True))


def csv_parser(header: str) -> Callable[[str], tuple[str, str | None, list[str]]]:
    """A function that turns one CSV line into (recipient_no, district, tags) per `header`."""
    try:
        names = [name.strip().lower() for name in _csv_fields(header)]
    except csv.Error as exc:
        raise ImportRefused(f"The CSV header line is malformed: {exc}.") from exc
    unknown = [name for name in names if name not in COLUMNS]
    if unknown or len(set(names)) != len(names) or "recipient_no" not in names:
        raise ImportRefused(
            f"The CSV header '{header[:200]}' must name the columns recipient_no and "
            f"optionally district and tags, each once, separated by commas."
        )
    count = len(names)
    recipient_at = names.index("recipient_no")
    district_at = names.index("district") if "district" in names else None
    tags_at = names.index("tags") if "tags" in names else None

    def parse(text: str) -> tuple[str, str | None, list[str]]:
        try:
            fields = _csv_fields(text)
        except csv.Error as exc:
            raise SubscriberError(f"malformed CSV line: {exc}") from exc
        if len(fields) != count:
            raise SubscriberError(f"expected {count} fields, found {len(fields)}")
        district = fields[district_at] if district_at is not None else None
        tags = fields[tags_at].split(";") if tags_at is not None else []
        return fields[recipient_at].strip(), district, tags

    return parse


def parse_ndjson(text: str) -> tuple[str, str | None, list[str]]:
    """One NDJSON line as (recipient_no, district, tags)."""
    try:
        value: Any = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise SubscriberError(f"malformed JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise SubscriberError("the line is not a JSON object")
    unknown = sorted(set(value) - set(COLUMNS))
    if unknown:
        raise SubscriberError(f"unknown fields {', '.join(unknown)}")
    recipient_no = value.get("recipient_no")
    district = value.get("district")
    tags = value.get("tags", [])
    if not isinstance(recipient_no, str):
        raise SubscriberError("recipient_no must be a string")
    if district is not None and not isinstance(district, str):
        raise SubscriberError("district must be a string or null")
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise SubscriberError("tags must be a list of strings")
    return recipient_no, district, tags


async def rows(
    chunks: AsyncIterable[bytes], fmt: Format, report: ImportReport
) -> AsyncIterator[Row]:
    """The valid rows of a body; rejected lines are counted in `report`."""
    parse: Callable[[str], tuple[str, str | None, list[str]]] | None = (
        parse_ndjson if fmt == "ndjson" else None
    )
    async for number, raw in lines(chunks):
        if number == 1 and raw is not None:
            raw = raw.removeprefix(_BOM)
        if raw is None:
            if parse is None:
                raise ImportRefused(f"The CSV header line is longer than {MAX_LINE_BYTES} bytes.")
            report.reject(number, f"line is longer than {MAX_LINE_BYTES} bytes")
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            if parse is None:
                raise ImportRefused("The CSV header line is not UTF-8.") from None
            report.reject(number, "line is not UTF-8")
            continue
        if not text.strip():
            continue
        if parse is None:
            parse = csv_parser(text)
            continue
        try:
            recipient_no, district, tags = parse(text)
            row = (
                number,
                check_recipient(recipient_no),
                check_district(district),
                check_tags(tags),
            )
        except SubscriberError as exc:
            report.reject(number, str(exc))
            continue
        yield row


_STAGE = """
CREATE TEMPORARY TABLE subscriber_import (
    line integer NOT NULL,
    recipient_no text NOT NULL,
    district text,
    tags text[] NOT NULL
) ON COMMIT DROP
"""

# Keep each number's first line; the later ones are rejected as duplicates.
_DROP_DUPLICATES = """
WITH ranked AS (
    SELECT line, first_value(line) OVER (PARTITION BY recipient_no ORDER BY line) AS first_line
    FROM subscriber_import
), dropped AS (
    DELETE FROM subscriber_import AS i USING ranked AS r
    WHERE i.line = r.line AND r.line <> r.first_line
    RETURNING r.line, r.first_line
)
SELECT line, first_line, count(*) OVER () AS total FROM dropped ORDER BY line LIMIT $1
"""

# Ordered by number so that concurrent imports lock rows in the same order.
_UPSERT = """
WITH upserted AS (
    INSERT INTO subscribers (recipient_no, district, tags)
    SELECT recipient_no, district, tags FROM subscriber_import ORDER BY recipient_no
    ON CONFLICT (recipient_no) DO UPDATE
        SET district = EXCLUDED.district, tags = EXCLUDED.tags, updated_at = now()
        WHERE (subscribers.district, subscribers.tags)
            IS DISTINCT FROM (EXCLUDED.district, EXCLUDED.tags)
    RETURNING (xmax = 0) AS created
)
SELECT count(*) FILTER (WHERE created) AS created,
       count(*) FILTER (WHERE NOT created) AS updated
FROM upserted
"""

_OPTED_OUT = """
SELECT count(*) FROM subscriber_import JOIN subscribers USING (recipient_no)
WHERE subscribers.status = 'opted_out'
"""


async def import_subscribers(
    dsn: str, chunks: AsyncIterable[bytes], fmt: Format, actor: audit.Actor
) -> ImportReport:
    """Import a streamed body into `subscribers` over a connection to `dsn` (plain asyncpg DSN),
    audited as `actor`'s `subscribers.import` in the same transaction.

    Raises `ImportRefused` when the file as a whole is unusable; nothing is changed then.
    """
    report = ImportReport()
    connection: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        async with connection.transaction():
            await connection.execute(_STAGE)
            copied = await connection.copy_records_to_table(
                "subscriber_import",
                records=rows(chunks, fmt, report),
                columns=["line", "recipient_no", "district", "tags"],
            )
            staged = int(copied.split()[-1])
            await connection.execute("ANALYZE subscriber_import")
            duplicates = await connection.fetch(_DROP_DUPLICATES, MAX_ERRORS)
            duplicate_count = duplicates[0]["total"] if duplicates else 0
            upserted = await connection.fetchrow(_UPSERT)
            opted_out = await connection.fetchval(_OPTED_OUT)
            detail = {
                "format": fmt,
                "staged": staged,
                "duplicates": duplicate_count,
                "created": upserted["created"],
                "updated": upserted["updated"],
            }
            await audit.record_on(connection, actor, "subscribers.import", detail=detail)
    finally:
        await connection.close()
    assert upserted is not None  # an aggregate always has one row
    report.errors = sorted(
        [
            *report.errors,
            *(RowError(r["line"], f"duplicate of line {r['first_line']}") for r in duplicates),
        ],
        key=lambda error: error.line,
    )[:MAX_ERRORS]
    report.rejected += duplicate_count
    report.accepted = staged - duplicate_count
    report.created = upserted["created"]
    report.updated = upserted["updated"]
    report.unchanged = report.accepted - report.created - report.updated
    report.opted_out = opted_out
    return report
