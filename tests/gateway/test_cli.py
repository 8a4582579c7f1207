"""`allim keys`, `allim send`, `allim watch` and `allim preview` against the gateway served
over real HTTP.

They live beside the gateway's tests to share its fixtures (app, keys, database).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.gateway.bodies import AlertJson
from tests.gateway.test_preview import stored_counts
from tests.serving import served
from tests.waiting import eventually

from cli.main import main
from cli.processes import Service, free_port
from common.db import session_factory
from common.kakao_limits import MAX_CONTENT, MAX_TITLE
from common.models import Alert
from gateway.auth import authenticate
from gateway.config import GatewaySettings

pytestmark = pytest.mark.integration

CAP_FILE = Path(__file__).with_name("cap_sample.xml")


@pytest.fixture(scope="module")
async def gateway_url(gateway_app: FastAPI) -> AsyncIterator[str]:
    """The session's app served by uvicorn on a loopback port (its lifespan already runs)."""
    async with served(gateway_app) as url:
        yield url


def _streams_started(app: FastAPI) -> float:
    """Event streams the gateway has started answering (`allim watch` connected)."""
    started = app.state.gateway.metrics.registry.get_sample_value(
        "allim_gateway_request_seconds_count",
        {"method": "GET", "route": "/v1/alerts/{alert_id}/events"},
    )
    return float(started or 0.0)


async def _allim(*argv: str) -> int:
    # the commands are synchronous (they block on HTTP): run them off the event loop
    return await asyncio.to_thread(main, list(argv))


async def _status(engine: AsyncEngine, alert_id: str) -> str:
    async with session_factory(engine)() as session:
        alert = await session.get(Alert, uuid.UUID(alert_id))
        assert alert is not None
        return alert.status


def test_keys_create_prints_a_working_key_and_revoke_disables_it(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ALLIM_DATABASE_URL", database_url)
    name = f"dashboard {uuid.uuid4().hex[:6]}"
    assert main(["users", "create", "--name", name, "--role", "viewer", "--no-password"]) == 0
    assert main(["keys", "create", "--user", name, "--label", "wall screen"]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert key.startswith("allim_")

    async def principal_role() -> str | None:
        from common.db import create_engine

        engine = create_engine(database_url, pool_size=1)
        try:
            async with session_factory(engine)() as session:
                principal = await authenticate(session, key)
                return principal.role if principal else None
        finally:
            await engine.dispose()

    assert asyncio.run(principal_role()) == "viewer"
    prefix = key.split("_")[1]
    assert main(["keys", "list"]) == 0
    assert f"{prefix}\t{name}\tviewer\tactive\tno\twall screen" in capsys.readouterr().out
    assert main(["keys", "revoke", prefix]) == 0
    assert asyncio.run(principal_role()) is None
    assert main(["keys", "revoke", prefix]) == 1


def test_users_create_refuses_an_unknown_role(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["users", "create", "--role", "root", "--name", "x", "--no-password"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


async def test_send_from_flags_then_again_with_the_same_key(
    gateway_url: str,
    api_keys: dict[str, str],
    engine: AsyncEngine,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [
        "send",
        "--gateway", gateway_url,
        "--api-key", api_keys["operator"],
        "--title", "버스 파업 안내",
        "--body", "내일 시내버스가 운행하지 않습니다.",
        "--category", "public",
        "--button", "노선=https://example.org/bus",
        "--district", "권선구",
        "--tag", "bus",
        "--idempotency-key", f"cli-{uuid.uuid4()}",
        "--json",
    ]  # fmt: skip
    assert await _allim(*argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["status"] == "queued"
    assert await _status(engine, first["id"]) == "queued"
    assert await _allim(*argv) == 0
    assert json.loads(capsys.readouterr().out)["id"] == first["id"]


async def test_send_reports_field_errors_and_sends_nothing(
    gateway_url: str, api_keys: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = await _allim(
        "send", "--gateway", gateway_url, "--api-key", api_keys["operator"],
        "--title", "가" * 60, "--body", "b", "--category", "public", "--all",
    )  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "422" in err
    assert "title" in err
    no_audience = await _allim(
        "send", "--gateway", gateway_url, "--api-key", api_keys["operator"],
        "--title", "t", "--body", "b", "--category", "public",
    )  # fmt: skip
    assert no_audience == 1
    assert "--all" in capsys.readouterr().err
    viewer = await _allim(
        "send", "--gateway", gateway_url, "--api-key", api_keys["viewer"],
        "--title", "t", "--body", "b", "--category", "public", "--all",
    )  # fmt: skip
    assert viewer == 1
    assert "403" in capsys.readouterr().err


async def test_send_a_cap_file(
    gateway_url: str, api_keys: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = CAP_FILE.read_text(encoding="utf-8").replace("KMA-SAMPLE", f"KMA-{uuid.uuid4()}")
    path = tmp_path / "typhoon.xml"
    path.write_text(document, encoding="utf-8")
    code = await _allim(
        "send", "--gateway", gateway_url, "--api-key", api_keys["operator"], "--file", str(path)
    )
    assert code == 0
    alert_id, status, url = capsys.readouterr().out.split()
    assert status == "queued"
    assert url.endswith(alert_id)


async def _finish(engine: AsyncEngine, alert_id: str, status: str) -> None:
    for delivered in (10, 20):
        async with session_factory(engine)() as session, session.begin():
            alert = await session.get(Alert, uuid.UUID(alert_id))
            assert alert is not None
            alert.status, alert.targeted, alert.delivered = "sending", 20, delivered
    async with session_factory(engine)() as session, session.begin():
        alert = await session.get(Alert, uuid.UUID(alert_id))
        assert alert is not None
        alert.status = status


@pytest.mark.parametrize(("status", "code"), [("completed", 0), ("failed", 3)])
async def test_watch_follows_until_the_broadcast_ends(
    gateway_app: FastAPI,
    gateway_url: str,
    api_keys: dict[str, str],
    engine: AsyncEngine,
    capsys: pytest.CaptureFixture[str],
    status: str,
    code: int,
) -> None:
    assert await _allim(
        "send", "--gateway", gateway_url, "--api-key", api_keys["operator"],
        "--title", "t", "--body", "b", "--category", "public", "--all", "--json",
    ) == 0  # fmt: skip
    alert_id = json.loads(capsys.readouterr().out)["id"]
    before = _streams_started(gateway_app)
    watching = asyncio.create_task(
        _allim("watch", alert_id, "--gateway", gateway_url, "--api-key", api_keys["viewer"])
    )
    # the broadcast goes on and ends only once the watch follows it
    await eventually(lambda: _streams_started(gateway_app) > before, what="watching")
    await _finish(engine, alert_id, status)
    result = await watching
    assert result == code
    summary = capsys.readouterr().out
    assert f"{alert_id}: {status}" in summary
    assert "delivered 20" in summary


async def test_watch_of_an_unknown_alert_fails(
    gateway_url: str, api_keys: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = await _allim(
        "watch", str(uuid.uuid4()), "--gateway", gateway_url, "--api-key", api_keys["viewer"]
    )
    assert code == 1
    assert "404" in capsys.readouterr().err
    assert await _allim("watch", "nope", "--gateway", gateway_url, "--api-key", "k") == 1


async def test_send_a_json_file_and_watch_it(
    gateway_app: FastAPI,
    gateway_url: str,
    api_keys: dict[str, str],
    engine: AsyncEngine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "alert.json"
    body = {
        "title": "단수 안내",
        "body": "내일 단수됩니다.",
        "category": "public",
        "audience": "all",
    }
    path.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    before = _streams_started(gateway_app)
    sending = asyncio.create_task(
        _allim(
            "send",
            "--gateway",
            gateway_url,
            "--api-key",
            api_keys["operator"],
            "--file",
            str(path),
            "--watch",
        )
    )
    await eventually(lambda: _streams_started(gateway_app) > before, what="watching")
    async with session_factory(engine)() as session:
        alert = await session.scalar(select(Alert).where(Alert.title == "단수 안내"))
    assert alert is not None
    await _finish(engine, str(alert.id), "completed")
    assert await sending == 0
    out = capsys.readouterr().out
    assert f"{alert.id}: completed" in out


@pytest.mark.slow
async def test_allim_gateway_serves_and_stops_cleanly_on_sigterm(
    gateway_settings: GatewaySettings, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "ALLIM_ENVIRONMENT": "test",
        "ALLIM_DATABASE_URL": gateway_settings.database_url,
        "ALLIM_KAFKA_BOOTSTRAP": gateway_settings.kafka_bootstrap,
        "ALLIM_TRACKING_SECRET": gateway_settings.tracking_secret.get_secret_value(),
        "ALLIM_GATEWAY_PORT": str(port),
    }
    url = f"http://127.0.0.1:{port}"
    service = Service("gateway", ["gateway"], env, f"{url}/readyz", tmp_path / "gateway.log")
    service.start()
    try:
        await asyncio.to_thread(service.wait_ready, 60.0)
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/healthz")).status_code == 200
    finally:
        code = await asyncio.to_thread(service.stop)
    assert code == 0, service.tail()
    assert "Application shutdown complete" in service.tail()


async def test_preview_prints_reach_message_and_warnings(
    gateway_url: str,
    operator: dict[str, str],
    alert_json: AlertJson,
    engine: AsyncEngine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    file = tmp_path / "alert.json"
    body = alert_json(send_at="2026-01-01T00:00:00+00:00")
    file.write_text(json.dumps(body, ensure_ascii=False), "utf-8")
    key = operator["X-API-Key"]
    before = await stored_counts(engine)
    flags = ("--gateway", gateway_url, "--api-key", key)
    assert await _allim("preview", "--file", str(file), *flags) != 0
    assert "send_at" in capsys.readouterr().err

    del body["send_at"]
    file.write_text(json.dumps(body, ensure_ascii=False), "utf-8")
    assert await _allim("preview", "--file", str(file), *flags) == 0
    out = capsys.readouterr().out
    assert "Recipients: " in out
    assert "  장안구: " in out
    assert f"title [{len(body['title'])}/{MAX_TITLE}]: {body['title']}" in out
    assert f"body [{len(body['body'])}/{MAX_CONTENT}]:" in out
    assert "-> #{link}" in out
    assert "Duration: not estimated." in out
    assert "Warnings: none" in out

    assert await _allim("preview", "--file", str(file), "--json", *flags) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["message"]["title"] == body["title"]
    assert answer["recipients"] >= 1
    assert await stored_counts(engine) == before
