"""GET /v1/alerts/{id}/events: progress as server-sent events until the broadcast ends."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from common.db import session_factory
from common.models import Alert

pytestmark = pytest.mark.integration


def _events(stream: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in stream.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
        )
        if "event" in fields:
            events.append((fields["event"], orjson.loads(fields["data"])))
    return events


async def _broadcast(engine: AsyncEngine, alert_id: uuid.UUID) -> None:
    # what the broadcaster writes while it sends, then at the end
    for status, delivered in (("sending", 0), ("sending", 40), ("completed", 95)):
        await asyncio.sleep(0.3)
        async with session_factory(engine)() as session, session.begin():
            alert = await session.get(Alert, alert_id)
            assert alert is not None
            alert.status, alert.targeted, alert.delivered, alert.failed = (
                status,
                100,
                delivered,
                5 if status == "completed" else 0,
            )


async def test_events_follow_the_alert_until_it_completes(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    viewer: dict[str, str],
    alert_json: Callable[..., dict[str, Any]],
    engine: AsyncEngine,
) -> None:
    alert_id = (await client.post("/v1/alerts", json=alert_json(), headers=operator)).json()["id"]
    writer = asyncio.create_task(_broadcast(engine, uuid.UUID(alert_id)))
    async with asyncio.timeout(30):
        response = await client.get(f"/v1/alerts/{alert_id}/events", headers=viewer)
    await writer
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _events(response.text)
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "end"
    assert set(kinds[:-1]) == {"progress"}
    progress = [(data["status"], data["delivered"], data["pending"]) for _, data in events]
    assert progress[0] == ("queued", 0, 0)
    assert ("sending", 40, 60) in progress
    assert progress[-1] == ("completed", 95, 0)
    # an event only when something changed
    assert len(progress) == len(set(progress))


async def test_events_of_an_ended_alert_is_one_end_event(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    viewer: dict[str, str],
    alert_json: Callable[..., dict[str, Any]],
) -> None:
    alert_id = (await client.post("/v1/alerts", json=alert_json(), headers=operator)).json()["id"]
    await client.post(f"/v1/alerts/{alert_id}/cancel", headers=operator)
    response = await client.get(f"/v1/alerts/{alert_id}/events", headers=viewer)
    events = _events(response.text)
    assert [(kind, data["status"]) for kind, data in events] == [("end", "cancelled")]


async def test_events_of_an_unknown_alert_is_404(
    client: httpx.AsyncClient, viewer: dict[str, str]
) -> None:
    response = await client.get(f"/v1/alerts/{uuid.uuid4()}/events", headers=viewer)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
