"""Exactly-once intake: Idempotency-Key replays and conflicts, concurrent duplicates, cancel."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.gateway.bodies import AlertJson

from common.db import session_factory
from common.messages import AlertControl
from common.models import Alert, OutboxEntry
from common.readback import read_back
from common.topics import ALERTS_CONTROL, ALERTS_REQUESTED

pytestmark = pytest.mark.integration


async def _count(engine: AsyncEngine, *where: Any) -> int:
    async with session_factory(engine)() as session:
        return int(await session.scalar(select(func.count()).select_from(Alert).where(*where)) or 0)


async def _outbox(engine: AsyncEngine, alert_id: str, topic: str) -> list[OutboxEntry]:
    async with session_factory(engine)() as session:
        rows = await session.scalars(
            select(OutboxEntry).where(OutboxEntry.key == alert_id, OutboxEntry.topic == topic)
        )
        return list(rows.all())


async def test_same_key_same_body_returns_the_first_alert(
    client: httpx.AsyncClient, operator: dict[str, str], alert_json: AlertJson, engine: AsyncEngine
) -> None:
    key = {"Idempotency-Key": f"retry-{uuid.uuid4()}"}
    first = await client.post("/v1/alerts", json=alert_json(), headers={**operator, **key})
    assert first.status_code == 202
    again = await client.post("/v1/alerts", json=alert_json(), headers={**operator, **key})
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert await _count(engine, Alert.idempotency_key == key["Idempotency-Key"]) == 1
    assert len(await _outbox(engine, first.json()["id"], ALERTS_REQUESTED)) == 1


async def test_same_key_other_body_is_409(
    client: httpx.AsyncClient, operator: dict[str, str], alert_json: AlertJson, engine: AsyncEngine
) -> None:
    key = {"Idempotency-Key": f"retry-{uuid.uuid4()}"}
    first = await client.post("/v1/alerts", json=alert_json(), headers={**operator, **key})
    assert first.status_code == 202
    other = await client.post(
        "/v1/alerts", json=alert_json(title="다른 제목"), headers={**operator, **key}
    )
    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"
    assert first.json()["id"] in other.json()["detail"]
    assert await _count(engine, Alert.idempotency_key == key["Idempotency-Key"]) == 1


async def test_concurrent_identical_posts_make_one_alert(
    client: httpx.AsyncClient, operator: dict[str, str], alert_json: AlertJson, engine: AsyncEngine
) -> None:
    key = {"Idempotency-Key": f"burst-{uuid.uuid4()}"}
    responses = await asyncio.gather(
        *(
            client.post("/v1/alerts", json=alert_json(), headers={**operator, **key})
            for _ in range(8)
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 7 + [202], [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await _count(engine, Alert.idempotency_key == key["Idempotency-Key"]) == 1
    assert len(await _outbox(engine, responses[0].json()["id"], ALERTS_REQUESTED)) == 1


async def test_posts_without_a_key_are_separate_alerts(
    client: httpx.AsyncClient, operator: dict[str, str], alert_json: AlertJson
) -> None:
    one = await client.post("/v1/alerts", json=alert_json(), headers=operator)
    two = await client.post("/v1/alerts", json=alert_json(), headers=operator)
    assert one.json()["id"] != two.json()["id"]


async def test_bad_idempotency_key_is_422(
    client: httpx.AsyncClient, operator: dict[str, str], alert_json: AlertJson
) -> None:
    response = await client.post(
        "/v1/alerts", json=alert_json(), headers={**operator, "Idempotency-Key": "k" * 201}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"


async def test_cancel_marks_cancelled_and_publishes_control(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    viewer: dict[str, str],
    alert_json: AlertJson,
    engine: AsyncEngine,
    kafka_topics: str,
) -> None:
    alert_id = (await client.post("/v1/alerts", json=alert_json(), headers=operator)).json()["id"]
    cancelled = await client.post(f"/v1/alerts/{alert_id}/cancel", headers=operator)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["cancelled_at"] is not None
    again = await client.post(f"/v1/alerts/{alert_id}/cancel", headers=operator)
    assert again.status_code == 200
    assert len(await _outbox(engine, alert_id, ALERTS_CONTROL)) == 1

    records = await read_back(kafka_topics, ALERTS_CONTROL, {alert_id})
    assert len(records) == 1
    control = AlertControl.model_validate_json(records[0].value)
    assert (str(control.alert_id), control.action) == (alert_id, "cancel")
    shown = (await client.get(f"/v1/alerts/{alert_id}", headers=viewer)).json()
    assert shown["status"] == "cancelled"


async def test_cancel_of_a_completed_alert_is_409(
    client: httpx.AsyncClient, operator: dict[str, str], alert_json: AlertJson, engine: AsyncEngine
) -> None:
    alert_id = (await client.post("/v1/alerts", json=alert_json(), headers=operator)).json()["id"]
    async with session_factory(engine)() as session, session.begin():
        alert = await session.get(Alert, uuid.UUID(alert_id))
        assert alert is not None
        alert.status = "completed"
    response = await client.post(f"/v1/alerts/{alert_id}/cancel", headers=operator)
    assert response.status_code == 409
    assert "completed" in response.json()["detail"]
    assert await _outbox(engine, alert_id, ALERTS_CONTROL) == []
    assert await _count(engine, Alert.id == uuid.UUID(alert_id), Alert.status == "completed") == 1


async def test_cancel_of_an_unknown_alert_is_404(
    client: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    response = await client.post(f"/v1/alerts/{uuid.uuid4()}/cancel", headers=operator)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
