"""Pause and resume at the gateway, against the real app and PostgreSQL: the status shown,
the control records and audit rows written, and the refusals that change nothing. The
senders' side is in tests/broadcaster/test_pipe.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.gateway.bodies import AlertJson
from tests.serving import served

from cli.main import main
from common.db import session_factory
from common.messages import AlertControl
from common.models import Alert, AuditEntry, OutboxEntry
from common.topics import ALERTS_CONTROL

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def gateway_url(gateway_app: FastAPI) -> AsyncIterator[str]:
    """The session's app served over real HTTP, for the commands."""
    async with served(gateway_app) as url:
        yield url


async def _controls(engine: AsyncEngine, alert_id: str) -> list[str]:
    """The actions of the alert's control records, in order."""
    async with session_factory(engine)() as session:
        payloads = await session.scalars(
            select(OutboxEntry.payload)
            .where(OutboxEntry.key == alert_id, OutboxEntry.topic == ALERTS_CONTROL)
            .order_by(OutboxEntry.id)
        )
        return [AlertControl.model_validate(p).action for p in payloads]


async def _audit(engine: AsyncEngine, alert_id: str) -> list[str]:
    async with session_factory(engine)() as session:
        actions = await session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.alert_id == uuid.UUID(alert_id))
            .order_by(AuditEntry.id)
        )
        return list(actions)


async def _set_status(engine: AsyncEngine, alert_id: str, status: str) -> None:
    # the broadcaster's transitions, which the gateway does not make
    async with session_factory(engine)() as session, session.begin():
        await session.execute(
            update(Alert).where(Alert.id == uuid.UUID(alert_id)).values(status=status)
        )


async def test_pause_and_resume_a_sending_alert(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    viewer: dict[str, str],
    engine: AsyncEngine,
    alert_json: AlertJson,
) -> None:
    alert_id = (await client.post("/v1/alerts", json=alert_json(), headers=operator)).json()["id"]
    await _set_status(engine, alert_id, "sending")

    paused = await client.post(f"/v1/alerts/{alert_id}/pause", headers=operator)
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "paused"
    assert (await client.get(f"/v1/alerts/{alert_id}", headers=viewer)).json()["status"] == "paused"
    listed = await client.get("/v1/alerts", params={"status": "paused"}, headers=viewer)
    assert alert_id in [a["id"] for a in listed.json()["items"]]
    sending = await client.get("/v1/alerts", params={"status": "sending"}, headers=viewer)
    assert alert_id not in [a["id"] for a in sending.json()["items"]]

    resumed = await client.post(f"/v1/alerts/{alert_id}/resume", headers=operator)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "sending"
    assert await _controls(engine, alert_id) == ["pause", "resume"]
    assert await _audit(engine, alert_id) == ["alert.create", "alert.pause", "alert.resume"]


@pytest.mark.parametrize("status", ["completed", "cancelled", "failed"])
async def test_an_alert_that_ended_cannot_be_paused_or_resumed(
    status: str,
    client: httpx.AsyncClient,
    operator: dict[str, str],
    engine: AsyncEngine,
    alert_json: AlertJson,
) -> None:
    alert_id = (await client.post("/v1/alerts", json=alert_json(), headers=operator)).json()["id"]
    await _set_status(engine, alert_id, status)
    for action in ("pause", "resume"):
        refused = await client.post(f"/v1/alerts/{alert_id}/{action}", headers=operator)
        assert refused.status_code == 409, refused.text
        assert refused.json()["alert_status"] == status
    assert await _controls(engine, alert_id) == []
    assert await _audit(engine, alert_id) == ["alert.create"]


async def test_twice_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, operator: dict[str, str], engine: AsyncEngine, alert_json: AlertJson
) -> None:
    alert_id = (await client.post("/v1/alerts", json=alert_json(), headers=operator)).json()["id"]
    not_paused = await client.post(f"/v1/alerts/{alert_id}/resume", headers=operator)
    assert not_paused.status_code == 409
    assert "not paused" in not_paused.json()["detail"]
    assert (await client.post(f"/v1/alerts/{alert_id}/pause", headers=operator)).status_code == 200
    again = await client.post(f"/v1/alerts/{alert_id}/pause", headers=operator)
    assert again.status_code == 409
    assert "paused already" in again.json()["detail"]
    assert await _controls(engine, alert_id) == ["pause"]


async def test_who_may_pause_and_unknown_alerts(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    viewer: dict[str, str],
    engine: AsyncEngine,
    alert_json: AlertJson,
) -> None:
    alert_id = (await client.post("/v1/alerts", json=alert_json(), headers=operator)).json()["id"]
    assert (await client.post(f"/v1/alerts/{alert_id}/pause", headers=viewer)).status_code == 403
    assert (await client.post(f"/v1/alerts/{alert_id}/pause")).status_code == 401
    missing = await client.post(f"/v1/alerts/{uuid.uuid4()}/pause", headers=operator)
    assert missing.status_code == 404
    assert (await client.post("/v1/alerts/nonsense/pause", headers=operator)).status_code == 422
    async with session_factory(engine)() as session:
        paused = await session.scalar(
            select(func.count()).where(
                Alert.id == uuid.UUID(alert_id), Alert.paused_at.is_not(None)
            )
        )
    assert paused == 0


async def test_a_cancel_while_paused_ends_it(
    client: httpx.AsyncClient, operator: dict[str, str], engine: AsyncEngine, alert_json: AlertJson
) -> None:
    alert_id = (await client.post("/v1/alerts", json=alert_json(), headers=operator)).json()["id"]
    await client.post(f"/v1/alerts/{alert_id}/pause", headers=operator)
    cancelled = await client.post(f"/v1/alerts/{alert_id}/cancel", headers=operator)
    assert cancelled.json()["status"] == "cancelled"
    assert (await client.post(f"/v1/alerts/{alert_id}/resume", headers=operator)).status_code == 409
    assert await _controls(engine, alert_id) == ["pause", "cancel"]


async def test_allim_pause_and_resume(
    gateway_url: str,
    operator: dict[str, str],
    alert_json: AlertJson,
    capsys: pytest.CaptureFixture[str],
) -> None:
    flags = ("--gateway", gateway_url, "--api-key", operator["X-API-Key"])
    async with httpx.AsyncClient(base_url=gateway_url, headers=operator) as http:
        alert_id = (await http.post("/v1/alerts", json=alert_json())).json()["id"]
    assert await asyncio.to_thread(main, ["pause", alert_id, *flags]) == 0
    assert capsys.readouterr().out.strip() == f"{alert_id} paused"
    assert await asyncio.to_thread(main, ["pause", alert_id, *flags]) == 1
    assert "paused already" in capsys.readouterr().err
    assert await asyncio.to_thread(main, ["resume", alert_id, *flags]) == 0
    assert capsys.readouterr().out.strip() == f"{alert_id} queued"
