"""The send rate, the estimate and the deadline an alert shows, against the real gateway
and PostgreSQL (the broadcaster's figures written as it writes them)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.gateway.bodies import AlertJson

from common.db import session_factory
from gateway.alert_views import RATE_WINDOW, RateWindow
from gateway.schemas import AlertPublic


async def _sending(
    engine: AsyncEngine, alert_id: str, started_ago: float, settled: int, status: str = "sending"
) -> None:
    async with session_factory(engine)() as session, session.begin():
        await session.execute(
            text(
                "UPDATE alerts SET status = :status, targeted = 100, delivered = :settled,"
                " started_at = now() - make_interval(secs => :ago) WHERE id = :id"
            ),
            {"id": uuid.UUID(alert_id), "settled": settled, "ago": started_ago, "status": status},
        )


async def _created(client: httpx.AsyncClient, operator: dict[str, str], body: dict) -> str:
    created = await client.post("/v1/alerts", json=body, headers=operator)
    assert created.status_code == 202, created.text
    return str(created.json()["id"])


@pytest.mark.integration
async def test_an_alert_on_time_shows_its_rate_and_estimate(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    viewer: dict[str, str],
    engine: AsyncEngine,
    alert_json: AlertJson,
) -> None:
    alert_id = await _created(client, operator, alert_json(deliver_within=3600))
    await _sending(engine, alert_id, started_ago=10, settled=50)
    shown = (await client.get(f"/v1/alerts/{alert_id}", headers=viewer)).json()
    assert shown["deliver_within"] == 3600
    assert 4.0 < shown["send_rate"] < 5.1  # 50 in a little over 10 s
    started = datetime.fromisoformat(shown["started_at"])
    eta = datetime.fromisoformat(shown["eta"])
    deadline = datetime.fromisoformat(shown["deadline"])
    assert (deadline - started).total_seconds() == 3600
    assert 9 <= (eta - started).total_seconds() - 10 <= 12  # the other 50 at that rate
    assert shown["late"] is False


@pytest.mark.integration
async def test_an_alert_that_will_miss_its_deadline_says_so(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    viewer: dict[str, str],
    engine: AsyncEngine,
    alert_json: AlertJson,
) -> None:
    behind = await _created(client, operator, alert_json(deliver_within=300))
    await _sending(engine, behind, started_ago=60, settled=10)  # 540 s more at this rate
    assert (await client.get(f"/v1/alerts/{behind}", headers=viewer)).json()["late"] is True
    passed = await _created(client, operator, alert_json(deliver_within=60))
    await _sending(engine, passed, started_ago=120, settled=99)
    assert (await client.get(f"/v1/alerts/{passed}", headers=viewer)).json()["late"] is True
    unbounded = await _created(client, operator, alert_json())
    await _sending(engine, unbounded, started_ago=600, settled=1)
    shown = (await client.get(f"/v1/alerts/{unbounded}", headers=viewer)).json()
    assert (shown["late"], shown["deadline"]) == (False, None)


@pytest.mark.integration
async def test_a_finished_alert_has_no_rate_and_keeps_its_verdict(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    viewer: dict[str, str],
    engine: AsyncEngine,
    alert_json: AlertJson,
) -> None:
    alert_id = await _created(client, operator, alert_json(deliver_within=60))
    await _sending(engine, alert_id, started_ago=120, settled=100, status="completed")
    async with session_factory(engine)() as session, session.begin():
        await session.execute(
            text("UPDATE alerts SET completed_at = now() WHERE id = :id"),
            {"id": uuid.UUID(alert_id)},
        )
    shown = (await client.get(f"/v1/alerts/{alert_id}", headers=viewer)).json()
    assert (shown["send_rate"], shown["eta"], shown["late"]) == (None, None, True)


@pytest.mark.integration
@pytest.mark.parametrize("deliver_within", [0, -5, 7 * 24 * 3600 + 1, "soon", 1.5])
async def test_a_bad_deadline_is_refused(
    deliver_within: object,
    client: httpx.AsyncClient,
    operator: dict[str, str],
    alert_json: AlertJson,
) -> None:
    refused = await client.post(
        "/v1/alerts", json=alert_json(deliver_within=deliver_within), headers=operator
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "deliver_within"


def _shown(delivered: int, status: str = "sending") -> AlertPublic:
    started = datetime.now(UTC) - timedelta(seconds=30)
    return AlertPublic.model_validate(
        {
            "id": uuid.uuid4(),
            "status": status,
            "status_reason": None,
            "title": "t",
            "body": "b",
            "category": "public",
            "buttons": [],
            "audience": {"all": True},
            "send_at": None,
            "expires_at": None,
            "created_at": started,
            "started_at": started,
            "completed_at": None,
            "cancelled_at": None,
            "targeted": 1000,
            "delivered": delivered,
            "failed": 0,
            "pending": 1000 - delivered,
            "readers": None,
            "read_rate": None,
            "cap_identifier": None,
            "author": None,
            "approval": "off",
            "decided_by": None,
            "decided_at": None,
            "test_of": None,
            "parent_id": None,
            "relation": None,
            "send_rate": 1.0,
            "eta": None,
            "deliver_within": 60,
            "deadline": started + timedelta(seconds=60),
            "late": False,
        }
    )


def test_the_stream_measures_the_rate_over_its_last_seconds() -> None:
    clock = [100.0]
    window = RateWindow(clock=lambda: clock[0])
    assert window.paced(_shown(0)).send_rate == 1.0  # too soon: the average stays
    clock[0] += 2
    assert window.paced(_shown(20)).send_rate == 1.0
    clock[0] += RATE_WINDOW
    recent = window.paced(_shown(720))  # 700 in the last 5 s
    assert recent.send_rate == pytest.approx(700 / RATE_WINDOW)
    assert recent.late is False  # the other 280 take under 3 s
    clock[0] += RATE_WINDOW
    slow = window.paced(_shown(730))  # 10 in the last 5 s: 270 more take 135 s
    assert slow.send_rate == pytest.approx(10 / RATE_WINDOW)
    assert slow.late is True
    assert window.paced(_shown(730, status="paused")).send_rate == 1.0
