"""`allim import FILE` against a gateway served by uvicorn on a loopback port."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.serving import served

from cli.main import main
from common.db import session_factory
from common.models import Subscriber
from gateway.auth import Role

pytestmark = pytest.mark.integration


@pytest.fixture
async def gateway_url(gateway_app: FastAPI) -> AsyncIterator[str]:
    """The session's app served over HTTP (its lifespan already runs)."""
    async with served(gateway_app) as url:
        yield url


def numbers(count: int) -> list[str]:
    return [f"011{n:08d}" for n in random.sample(range(10**8), count)]


async def stored(engine: AsyncEngine, recipients: list[str]) -> int:
    async with session_factory(engine)() as session:
        found = await session.scalar(
            select(func.count()).where(Subscriber.recipient_no.in_(recipients))
        )
    return int(found or 0)


async def run(*argv: str) -> int:
    return await asyncio.to_thread(main, ["import", *argv])


async def test_import_streams_a_file_and_reports(
    gateway_url: str,
    api_keys: dict[Role, str],
    engine: AsyncEngine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recipients = numbers(1000)
    path = tmp_path / "friends.csv"
    lines = ["recipient_no,district,tags", *(f"{n},장안구,교통" for n in recipients)]
    path.write_text("\n".join([*lines, "12345,장안구,", f"{recipients[0]},팔달구,"]) + "\n")

    status = await run(
        str(path), "--gateway", gateway_url, "--api-key", api_keys["operator"], "--json"
    )
    assert status == 3
    report = json.loads(capsys.readouterr().out)
    assert (report["accepted"], report["rejected"]) == (1000, 2)
    assert [e["line"] for e in report["errors"]] == [1002, 1003]
    assert await stored(engine, recipients) == 1000

    clean = tmp_path / "clean.ndjson"
    more = numbers(3)
    clean.write_text("".join(json.dumps({"recipient_no": n}) + "\n" for n in more))
    status = await run(str(clean), "--gateway", gateway_url, "--api-key", api_keys["operator"])
    assert status == 0
    assert "accepted" in capsys.readouterr().out
    assert await stored(engine, more) == 3


@pytest.mark.parametrize(
    ("name", "extra", "role", "message"),
    [
        ("friends.txt", [], "operator", "--format"),
        ("friends.csv", ["--api-key", ""], None, "API key"),
        ("friends.csv", [], "viewer", "403"),
        ("missing.csv", [], "operator", "does not exist"),
    ],
)
async def test_import_failures_are_explained(
    gateway_url: str,
    api_keys: dict[Role, str],
    engine: AsyncEngine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    extra: list[str],
    role: Role | None,
    message: str,
) -> None:
    [number] = numbers(1)
    if name != "missing.csv":
        (tmp_path / name).write_text(f"recipient_no\n{number}\n")
    key = ["--api-key", api_keys[role]] if role else []
    status = await run(str(tmp_path / name), "--gateway", gateway_url, *key, *extra)
    assert status == 1
    assert message in capsys.readouterr().err
    assert await stored(engine, [number]) == 0


async def test_an_unreachable_gateway_is_reported(
    api_keys: dict[Role, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "friends.csv"
    path.write_text("recipient_no\n01012345678\n")
    status = await run(str(path), "--gateway", "http://127.0.0.1:9", "--api-key", "allim_a_b")
    assert status == 1
    assert "did not answer" in capsys.readouterr().err
