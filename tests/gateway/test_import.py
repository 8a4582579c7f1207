"""POST /v1/subscribers:import: CSV and NDJSON streamed through COPY into PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.waiting import eventually

from common.db import asyncpg_dsn, session_factory
from common.models import Subscriber
from gateway.auth import Role
from gateway.importer import MAX_ERRORS, MAX_LINE_BYTES, UnsupportedFormat, format_of, lines

pytestmark = pytest.mark.integration

IMPORT = "/v1/subscribers:import"
CSV = {"Content-Type": "text/csv; charset=utf-8"}
NDJSON = {"Content-Type": "application/x-ndjson"}


def numbers(count: int) -> list[str]:
    return [f"010{n:08d}" for n in random.sample(range(10**8), count)]


def headers(
    keys: dict[Role, str], content: dict[str, str], role: Role = "operator"
) -> dict[str, str]:
    return {"X-API-Key": keys[role], **content}


async def stored(engine: AsyncEngine, recipients: list[str]) -> dict[str, Subscriber]:
    async with session_factory(engine)() as session:
        rows = await session.scalars(
            select(Subscriber).where(Subscriber.recipient_no.in_(recipients))
        )
        return {row.recipient_no: row for row in rows}


async def chunked(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_lines_are_split_across_chunks_and_long_lines_cut() -> None:
    long = b"x" * (MAX_LINE_BYTES + 10)
    data = b"a,b\r\nc\n\n" + long + b"\nd\n" + long
    for size in (1, 3, 7, 4096, len(data)):
        got = [item async for item in lines(chunked(data, size))]
        assert got == [(1, b"a,b"), (2, b"c"), (3, b""), (4, None), (5, b"d"), (6, None)], size


async def test_line_length_limit_is_exact() -> None:
    fits, over = b"x" * MAX_LINE_BYTES, b"x" * (MAX_LINE_BYTES + 1)
    data = fits + b"\r\n" + over + b"\n" + fits
    got = [item async for item in lines(chunked(data, 1000))]
    assert got == [(1, fits), (2, None), (3, fits)]
    got = [item async for item in lines(chunked(over, 1000))]
    assert got == [(1, None)]


def test_content_types() -> None:
    assert format_of("text/csv") == "csv"
    assert format_of("text/csv; charset=UTF-8") == "csv"
    assert format_of("application/x-ndjson") == "ndjson"
    for bad in (None, "application/json", "text/plain", "text/csv; charset=euc-kr"):
        with pytest.raises(UnsupportedFormat):
            format_of(bad)


async def test_csv_import_creates_updates_and_reports(
    client: httpx.AsyncClient, api_keys: dict[Role, str], engine: AsyncEngine
) -> None:
    new = numbers(3)
    body = (
        "\ufeffrecipient_no,district,tags\r\n"
        f"{new[0]},장안구,교통;날씨\r\n"
        f'{new[1]},"팔달구, 행궁동",\r\n'
        f"{new[2]},,교통\r\n"
    ).encode()
    response = await client.post(IMPORT, content=body, headers=headers(api_keys, CSV))
    assert response.status_code == 200, response.text
    report = response.json()
    assert report == {
        "accepted": 3,
        "rejected": 0,
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "opted_out": 0,
        "errors": [],
    }
    rows = await stored(engine, new)
    assert (rows[new[0]].district, rows[new[0]].tags) == ("장안구", ["교통", "날씨"])
    assert (rows[new[1]].district, rows[new[1]].tags) == ("팔달구, 행궁동", [])
    assert (rows[new[2]].district, rows[new[2]].tags) == (None, ["교통"])

    # the same file again changes nothing; a changed district is an update
    again = await client.post(IMPORT, content=body, headers=headers(api_keys, CSV))
    assert (again.json()["unchanged"], again.json()["created"]) == (3, 0)
    changed = f"tags,recipient_no,district\n교통,{new[2]},권선구\n".encode()
    updated = await client.post(IMPORT, content=changed, headers=headers(api_keys, CSV))
    assert (updated.json()["updated"], updated.json()["accepted"]) == (1, 1)
    assert (await stored(engine, [new[2]]))[new[2]].district == "권선구"


async def test_bad_lines_are_rejected_by_number_and_the_rest_imported(
    client: httpx.AsyncClient, api_keys: dict[Role, str], engine: AsyncEngine
) -> None:
    good = numbers(4)
    body = b"\n".join(
        [
            b"recipient_no,district,tags",
            f"{good[0]},장안구,".encode(),  # 2
            b"010-1234-5678,,",  # 3: not digits
            f"{good[1]},{'구' * 65},".encode(),  # 4: district too long
            f"{good[2]},장안구".encode(),  # 5: two fields
            f'{good[3]},"unclosed,x'.encode(),  # 6: malformed quoting
            f"{good[0]},권선구,".encode(),  # 7: duplicate of line 2
            f"{good[1]},\xff\xfe,".encode() + b"\xff",  # 8: not UTF-8
            b"",  # 9: blank, skipped
            f"{good[2]},x,{'y' * (MAX_LINE_BYTES + 1)}".encode(),  # 10: too long
            f"{good[3]},영통구,a;b".encode(),  # 11
            f"{good[2]},장안\x00구,".encode(),  # 12: NUL, which PostgreSQL cannot store
        ]
    )
    response = await client.post(IMPORT, content=body, headers=headers(api_keys, CSV))
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["accepted"], report["rejected"]) == (2, 8)
    reasons = {e["line"]: e["reason"] for e in report["errors"]}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 10, 12]
    assert "recipient_no" in reasons[3]
    assert "district" in reasons[4]
    assert "expected 3 fields" in reasons[5]
    assert "malformed" in reasons[6]
    assert reasons[7] == "duplicate of line 2"
    assert "UTF-8" in reasons[8]
    assert "longer than" in reasons[10]
    assert "NUL" in reasons[12]
    rows = await stored(engine, good)
    assert sorted(rows) == sorted([good[0], good[3]])
    assert rows[good[0]].district == "장안구"  # the first line of a number wins
    assert rows[good[3]].tags == ["a", "b"]


async def test_ndjson_import(
    client: httpx.AsyncClient, api_keys: dict[Role, str], engine: AsyncEngine
) -> None:
    good = numbers(3)
    body = "\n".join(
        [
            f'{{"recipient_no": "{good[0]}", "district": "장안구", "tags": ["교통"]}}',
            f'{{"recipient_no": "{good[1]}"}}',
            '{"recipient_no": 1012345678}',
            f'{{"recipient_no": "{good[2]}", "tags": "교통"}}',
            f'{{"recipient_no": "{good[2]}", "extra": 1}}',
            "[1, 2]",
            '{"recipient_no": ',
        ]
    ).encode()
    response = await client.post(IMPORT, content=body, headers=headers(api_keys, NDJSON))
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["accepted"], report["rejected"]) == (2, 5)
    assert [e["line"] for e in report["errors"]] == [3, 4, 5, 6, 7]
    assert "unknown fields extra" in report["errors"][2]["reason"]
    rows = await stored(engine, good)
    assert (rows[good[0]].district, rows[good[0]].tags) == ("장안구", ["교통"])
    assert (rows[good[1]].district, rows[good[1]].tags) == (None, [])


async def test_import_keeps_opt_outs(
    client: httpx.AsyncClient, api_keys: dict[Role, str], engine: AsyncEngine
) -> None:
    [number] = numbers(1)
    operator = {"X-API-Key": api_keys["operator"]}
    await client.put(f"/v1/subscribers/{number}", json={"district": "장안구"}, headers=operator)
    await client.delete(f"/v1/subscribers/{number}", headers=operator)
    body = f"recipient_no,district\n{number},팔달구\n".encode()
    report = (await client.post(IMPORT, content=body, headers=headers(api_keys, CSV))).json()
    assert (report["updated"], report["opted_out"]) == (1, 1)
    row = (await stored(engine, [number]))[number]
    assert (row.status, row.district) == ("opted_out", "팔달구")


async def test_errors_are_capped_but_all_counted(
    client: httpx.AsyncClient, api_keys: dict[Role, str]
) -> None:
    body = ("recipient_no\n" + "bad\n" * (MAX_ERRORS + 50)).encode()
    report = (await client.post(IMPORT, content=body, headers=headers(api_keys, CSV))).json()
    assert report["rejected"] == MAX_ERRORS + 50
    assert len(report["errors"]) == MAX_ERRORS
    assert report["errors"][0]["line"] == 2


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"recipient_no,district\n{n},x\n", "application/json", 415),
        (b"recipient_no,district\n{n},x\n", "text/csv; charset=euc-kr", 415),
        (b"number,district\n{n},x\n", "text/csv", 400),
        (b"recipient_no,recipient_no\n{n},{n}\n", "text/csv", 400),
        (b"recipient_no,district,phone\n{n},x,y\n", "text/csv", 400),
        (b"\xffrecipient_no\n{n}\n", "text/csv", 400),
    ],
)
async def test_unusable_files_are_refused_whole(
    client: httpx.AsyncClient,
    api_keys: dict[Role, str],
    engine: AsyncEngine,
    content: bytes,
    content_type: str,
    status: int,
) -> None:
    [number] = numbers(1)
    body = content.replace(b"{n}", number.encode())
    response = await client.post(
        IMPORT, content=body, headers=headers(api_keys, {"Content-Type": content_type})
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await stored(engine, [number]) == {}


async def test_import_needs_the_operator_role(
    client: httpx.AsyncClient, api_keys: dict[Role, str], engine: AsyncEngine
) -> None:
    [number] = numbers(1)
    body = f"recipient_no\n{number}\n".encode()
    assert (await client.post(IMPORT, content=body, headers=CSV)).status_code == 401
    viewer = await client.post(IMPORT, content=body, headers=headers(api_keys, CSV, "viewer"))
    assert viewer.status_code == 403
    assert await stored(engine, [number]) == {}


async def copy_is_running(dsn: str) -> bool:
    connection = await asyncpg.connect(dsn)
    try:
        running = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query LIKE 'COPY%subscriber_import%'"
        )
    finally:
        await connection.close()
    return bool(running)


async def test_import_is_streamed(
    client: httpx.AsyncClient, api_keys: dict[Role, str], engine: AsyncEngine, database_url: str
) -> None:
    """The COPY runs while the client is still sending: the body is never read whole."""
    recipients = numbers(2000)
    seen_copy_mid_body = False

    async def body() -> AsyncIterator[bytes]:
        nonlocal seen_copy_mid_body
        yield b"recipient_no,district\n"
        for start in range(0, len(recipients), 100):
            yield "".join(f"{n},중구\n" for n in recipients[start : start + 100]).encode()
            if start == 1000:
                # the second half is sent only once the server is copying the first
                await eventually(
                    lambda: copy_is_running(asyncpg_dsn(database_url)), 60, what="copying"
                )
                seen_copy_mid_body = True

    response = await client.post(IMPORT, content=body(), headers=headers(api_keys, CSV))
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(recipients)
    assert seen_copy_mid_body
    assert len(await stored(engine, recipients)) == len(recipients)


async def test_a_client_that_goes_away_changes_nothing(
    gateway_app: FastAPI, api_keys: dict[Role, str], engine: AsyncEngine
) -> None:
    recipients = numbers(50)
    chunk = ("recipient_no\n" + "".join(f"{n}\n" for n in recipients)).encode()
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": chunk, "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # a gone client sends nothing more
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": IMPORT,
        "raw_path": IMPORT.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"gateway.test"),
            (b"content-type", b"text/csv"),
            (b"x-api-key", api_keys["operator"].encode()),
        ],
        "server": ("gateway.test", 80),
        "client": ("127.0.0.1", 50000),
    }
    await asyncio.wait_for(gateway_app(scope, receive, send), 30)
    statuses = [m["status"] for m in sent if m["type"] == "http.response.start"]
    assert statuses == [400]
    assert await stored(engine, recipients) == {}
