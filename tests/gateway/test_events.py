"""GET /v1/alerts/{id}/events: progress as server-sent events until the broadcast ends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.serving import served

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


async def _write(engine: AsyncEngine, alert_id: uuid.UUID, state: tuple[str, int, int]) -> None:
    # what the broadcaster writes while it sends, then at the end
    async with session_factory(engine)() as session, session.begin():
        alert = await session.get(Alert, alert_id)
        assert alert is not None
        alert.targeted = 100
        alert.status, alert.delivered, alert.failed = state


async def _stream(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """The events of a server-sent event stream as they arrive."""
    block: list[str] = []
    async for line in lines:
        if line:
            block.append(line)
            continue
        for kind, data in _events("\n".join(block)):
            yield kind, data
        block = []


async def test_events_follow_the_alert_until_it_completes(
    gateway_app: FastAPI,
    client: httpx.AsyncClient,
    operator: dict[str, str],
    viewer: dict[str, str],
    alert_json: Callable[..., dict[str, Any]],
    engine: AsyncEngine,
) -> None:
    alert_id = (await client.post("/v1/alerts", json=alert_json(), headers=operator)).json()["id"]
    # each change is written once the stream has shown the one before: none can be missed
    changes = iter([("sending", 0, 0), ("sending", 40, 0), ("completed", 95, 5)])
    events = []
    async with (
        served(gateway_app) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
        http.stream("GET", f"/v1/alerts/{alert_id}/events", headers=viewer) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for event in _stream(response.aiter_lines()):
            events.append(event)
            change = next(changes, None)
            if change is not None:
                await _write(engine, uuid.UUID(alert_id), change)
    kinds = [kind for kind, _ in events]
    assert kinds == ["progress", "progress", "progress", "end"]
    progress = [(data["status"], data["delivered"], data["pending"]) for _, data in events]
    # an event each time something changed, and only then
    assert progress == [
        ("queued", 0, 0),
        ("sending", 0, 100),
        ("sending", 40, 60),
        ("completed", 95, 0),
    ]


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
