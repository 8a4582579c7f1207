"""Who got an alert, at the gateway against PostgreSQL: each outcome of the look-up, the
failures and delivered lists as pages and as CSV, and the refusals. The batches are written
as the broadcaster's settlement writes them (tests/broadcaster/test_pipe.py shows it does)."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.gateway.scenes import Scene, build_scene
from tests.serving import served

from cli.main import main
from common.db import session_factory

pytestmark = pytest.mark.integration


@pytest.fixture
async def scene(engine: AsyncEngine) -> Scene:
    """See `build_scene`."""
    return await build_scene(engine)


async def test_each_recipient_gets_their_outcome(
    client: httpx.AsyncClient, viewer: dict[str, str], scene: Scene
) -> None:
    async def outcome(who: str) -> dict[str, object]:
        answer = await client.get(scene.path(who), headers=viewer)
        assert answer.status_code == 200, (who, answer.text)
        found: dict[str, object] = answer.json()
        return found

    delivered = await outcome("delivered")
    assert (delivered["outcome"], delivered["code"]) == ("delivered", 1000)
    assert delivered["at"] is not None
    failed = await outcome("failed")
    assert (failed["outcome"], failed["code"], failed["reason"]) == (
        "failed",
        3018,
        "no such KakaoTalk user",
    )
    retried = await outcome("retried")
    assert (retried["outcome"], retried["batch_id"]) == ("delivered", f"{scene.alert_id}:0:2")
    left = await outcome("left")
    assert left["outcome"] == "not_sent"
    assert "opted out" in str(left["reason"])
    assert (await outcome("pending"))["outcome"] == "pending"
    assert (await outcome("late"))["outcome"] == "pending"  # the alert is still sending


async def test_after_the_end_a_late_joiner_was_not_sent(
    client: httpx.AsyncClient, viewer: dict[str, str], scene: Scene, engine: AsyncEngine
) -> None:
    async with session_factory(engine)() as session, session.begin():
        await session.execute(
            text("UPDATE alerts SET status = 'completed' WHERE id = :id"), {"id": scene.alert_id}
        )
    late = (await client.get(scene.path("late"), headers=viewer)).json()
    assert (late["outcome"], late["reason"]) == ("not_sent", "joined after the alert was planned")


async def test_unknown_alerts_numbers_and_strangers_are_404(
    client: httpx.AsyncClient, viewer: dict[str, str], scene: Scene
) -> None:
    stranger = await client.get(scene.path("elsewhere"), headers=viewer)
    assert stranger.status_code == 404
    assert "never in the audience" in stranger.json()["detail"]
    unused = f"019{uuid.uuid4().int % 10**8:08d}"  # no test seeds a 019 number
    nobody = await client.get(f"/v1/alerts/{scene.alert_id}/recipients/{unused}", headers=viewer)
    assert nobody.status_code == 404
    assert "No subscriber has the number" in nobody.json()["detail"]
    unknown = await client.get(f"/v1/alerts/{uuid.uuid4()}/recipients/01012345678", headers=viewer)
    assert unknown.status_code == 404
    malformed = await client.get(f"/v1/alerts/{scene.alert_id}/recipients/12345", headers=viewer)
    assert malformed.status_code == 422
    assert (await client.get(scene.path("delivered"))).status_code == 401


async def test_the_lists_page_and_filter(
    client: httpx.AsyncClient, viewer: dict[str, str], scene: Scene
) -> None:
    path = f"/v1/alerts/{scene.alert_id}/recipients"
    failed = (await client.get(path, headers=viewer)).json()
    assert [r["recipient_no"] for r in failed["items"]] == [scene.numbers["failed"]]
    by_code = await client.get(path, params={"code": [3019, 3020]}, headers=viewer)
    assert by_code.json()["items"] == []

    first = await client.get(path, params={"outcome": "delivered", "limit": 1}, headers=viewer)
    assert [r["recipient_no"] for r in first.json()["items"]] == [scene.numbers["delivered"]]
    cursor = first.json()["next_cursor"]
    second = await client.get(
        path, params={"outcome": "delivered", "limit": 1, "cursor": cursor}, headers=viewer
    )
    assert [r["recipient_no"] for r in second.json()["items"]] == [scene.numbers["retried"]]
    assert second.json()["next_cursor"] is None


async def test_the_csv_holds_every_row(
    client: httpx.AsyncClient, viewer: dict[str, str], scene: Scene
) -> None:
    path = f"/v1/alerts/{scene.alert_id}/recipients"
    answer = await client.get(
        path, params={"outcome": "delivered"}, headers=viewer | {"Accept": "text/csv"}
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [(r["recipient_no"], r["outcome"], r["code"]) for r in rows] == [
        (scene.numbers["delivered"], "delivered", "1000"),
        (scene.numbers["retried"], "delivered", "1000"),
    ]
    # a link cannot set Accept: format=csv answers the same CSV, format=json a page
    linked = await client.get(
        path, params={"outcome": "delivered", "format": "csv"}, headers=viewer
    )
    assert linked.headers["content-type"].startswith("text/csv")
    assert linked.headers["content-disposition"].startswith("attachment")
    assert linked.text == answer.text
    paged = await client.get(
        path,
        params={"outcome": "delivered", "format": "json"},
        headers=viewer | {"Accept": "text/csv"},
    )
    assert [r["recipient_no"] for r in paged.json()["items"]] == [
        scene.numbers["delivered"],
        scene.numbers["retried"],
    ]


async def test_bad_list_queries_are_422(
    client: httpx.AsyncClient, viewer: dict[str, str], scene: Scene
) -> None:
    path = f"/v1/alerts/{scene.alert_id}/recipients"
    for params in (
        {"cursor": "nonsense"},
        {"outcome": "everyone"},
        {"code": "x"},
        {"outcome": "delivered", "code": 3018},
        {"limit": 0},
        {"format": "xml"},
    ):
        answer = await client.get(path, params=params, headers=viewer)
        assert answer.status_code == 422, (params, answer.text)
    missing = await client.get(f"/v1/alerts/{uuid.uuid4()}/recipients", headers=viewer)
    assert missing.status_code == 404


async def test_allim_recipients_prints_the_csv_and_one_recipient(
    gateway_app: FastAPI,
    viewer: dict[str, str],
    scene: Scene,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    async with served(gateway_app) as url:
        flags = ("--gateway", url, "--api-key", viewer["X-API-Key"])
        alert = str(scene.alert_id)
        assert await asyncio.to_thread(main, ["recipients", alert, *flags]) == 0
        rows = list(csv.DictReader(io.StringIO(capsysbinary.readouterr().out.decode())))
        assert [r["recipient_no"] for r in rows] == [scene.numbers["failed"]]
        number = scene.numbers["retried"]
        assert await asyncio.to_thread(main, ["recipients", alert, "--number", number, *flags]) == 0
        assert capsysbinary.readouterr().out.decode().startswith(f"{number} delivered 1000 ")
        stranger = scene.numbers["elsewhere"]
        assert (
            await asyncio.to_thread(main, ["recipients", alert, "--number", stranger, *flags]) == 1
        )
        assert b"never in the audience" in capsysbinary.readouterr().err
