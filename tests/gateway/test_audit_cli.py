"""`allim keys` leaves audit rows, and `allim audit` shows the log from the gateway over real
HTTP. Beside the gateway's tests to share its fixtures (app, keys, database)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.gateway.bodies import AlertJson
from tests.serving import served

from cli.main import main
from common.db import session_factory
from common.models import AuditEntry

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def gateway_url(gateway_app: FastAPI) -> AsyncIterator[str]:
    """The session's app served by uvicorn on a loopback port (its lifespan already runs)."""
    async with served(gateway_app) as url:
        yield url


async def _allim(*argv: str) -> int:
    # the commands are synchronous (they block on HTTP): run them off the event loop
    return await asyncio.to_thread(main, list(argv))


async def _key_rows(engine: AsyncEngine, prefix: str) -> list[AuditEntry]:
    async with session_factory(engine)() as session:
        query = select(AuditEntry).where(AuditEntry.detail["prefix"].astext == prefix)
        return list((await session.scalars(query.order_by(AuditEntry.id))).all())


async def test_keys_create_and_revoke_are_recorded(
    database_url: str,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ALLIM_DATABASE_URL", database_url)
    name = f"audited {uuid.uuid4().hex[:8]}"
    assert await _allim("users", "create", "--name", name, "--role", "viewer", "--no-password") == 0
    assert await _allim("keys", "create", "--user", name, "--label", "dashboard") == 0
    prefix = capsys.readouterr().out.strip().splitlines()[-1].split("_")[1]
    assert await _allim("keys", "revoke", prefix) == 0
    # a revoke that finds no active key changes nothing and records nothing
    assert await _allim("keys", "revoke", prefix) == 1
    rows = await _key_rows(engine, prefix)
    assert [r.action for r in rows] == ["key.create", "key.revoke"]
    assert all(r.actor.startswith("cli:") and r.key_id is None for r in rows)
    assert rows[0].detail == {
        "user": name,
        "label": "dashboard",
        "prefix": prefix,
        "machine_feed": False,
    }


async def test_audit_shows_an_alerts_actions(
    gateway_url: str,
    api_keys: dict[str, str],
    alert_json: AlertJson,
    capsys: pytest.CaptureFixture[str],
) -> None:
    headers = {"X-API-Key": api_keys["operator"]}
    async with httpx.AsyncClient(base_url=gateway_url, headers=headers) as client:
        alert_id = (await client.post("/v1/alerts", json=alert_json())).json()["id"]
        assert (await client.post(f"/v1/alerts/{alert_id}/cancel")).status_code == 200
    capsys.readouterr()
    flags = ("--gateway", gateway_url, "--api-key", api_keys["approver"])
    assert await _allim("audit", "--alert", alert_id, *flags) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[1:4] for line in lines] == [
        ["test operator", "alert.cancel", alert_id],
        ["test operator", "alert.create", alert_id],
    ]

    # --limit 1 with a page size of one follows no further cursor
    assert await _allim("audit", "--alert", alert_id, "--limit", "1", "--json", *flags) == 0
    [only] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert only["action"] == "alert.cancel"
    assert await _allim("audit", "--actor", "test operator", "--limit", "300", *flags) == 0
    assert len(capsys.readouterr().out.splitlines()) >= 2


async def test_audit_refuses_a_viewer_and_a_bad_id(
    gateway_url: str, api_keys: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _allim("audit", "--gateway", gateway_url, "--api-key", api_keys["viewer"]) == 1
    assert "403" in capsys.readouterr().err
    flags = ("--gateway", gateway_url, "--api-key", api_keys["admin"])
    assert await _allim("audit", "--alert", "not-an-id", *flags) == 1
    assert "not an alert id" in capsys.readouterr().err
