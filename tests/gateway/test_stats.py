"""GET /v1/alerts/{id}/stats: the analytics rollup and the reads-per-minute series."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from common.db import session_factory
from common.models import Alert, AlertReadsMinute, AlertStats

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def _alert(alert_id: uuid.UUID, **values: object) -> Alert:
    """The gateway's row of a public alert to everyone."""
    return Alert(
        id=alert_id,
        title="버스 파업 안내",
        body="내일 시내버스가 운행하지 않습니다.",
        category="public",
        audience={"all": True},
        **values,
    )


async def test_the_rollup_and_its_series(
    client: httpx.AsyncClient, viewer: dict[str, str], engine: AsyncEngine
) -> None:
    alert = uuid.uuid4()
    async with session_factory(engine)() as session:
        session.add(
            AlertStats(
                alert_id=alert,
                category="emergency",
                targeted=1000,
                delivered=990,
                failed=10,
                failed_by_reason={"3019": 10},
                readers=1060,
                first_readers=700,
                forwarded_readers=360,
                taps=1500,
                status="completed",
                started_at=T0,
                completed_at=T0 + timedelta(seconds=20),
            )
        )
        session.add_all(
            [
                AlertReadsMinute(
                    alert_id=alert, minute=T0 + timedelta(minutes=1), reads=900, new_readers=800
                ),
                AlertReadsMinute(alert_id=alert, minute=T0, reads=600, new_readers=260),
            ]
        )
        await session.commit()

    response = await client.get(f"/v1/alerts/{alert}/stats", headers=viewer)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["alert_id"] == str(alert)
    assert (body["delivered"], body["failed"], body["readers"]) == (990, 10, 1060)
    assert body["failed_by_reason"] == {"3019": 10}
    assert body["read_rate"] == pytest.approx(1060 / 990)
    assert body["forward_rate"] == pytest.approx(360 / 1060)
    assert body["duration_seconds"] == 20.0
    assert body["messages_per_second"] == pytest.approx(1000 / 20)
    assert [(p["reads"], p["new_readers"]) for p in body["series"]] == [(600, 260), (900, 800)]


async def test_an_alert_analytics_has_not_seen_yet_has_a_rollup_of_zeros(
    client: httpx.AsyncClient, viewer: dict[str, str], engine: AsyncEngine
) -> None:
    alert = uuid.uuid4()
    async with session_factory(engine)() as session:
        session.add(_alert(alert, status="queued"))
        await session.commit()

    response = await client.get(f"/v1/alerts/{alert}/stats", headers=viewer)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["title"], body["status"], body["category"]) == (
        "버스 파업 안내",
        "queued",
        "public",
    )
    # no delivery counted yet: no read rate, as GET /v1/alerts/{id} says
    assert (body["delivered"], body["readers"], body["read_rate"], body["series"]) == (
        0,
        0,
        None,
        [],
    )


async def test_the_stats_and_the_alert_show_one_status_and_one_read_rate(
    client: httpx.AsyncClient, viewer: dict[str, str], engine: AsyncEngine
) -> None:
    alert = uuid.uuid4()
    async with session_factory(engine)() as session:
        session.add(_alert(alert, status="cancelled", targeted=1000, started_at=T0))
        # analytics saw the `sending` event published before the cancel, and taps on links
        # whose batches it has not counted yet
        session.add(
            AlertStats(alert_id=alert, category="public", targeted=900, readers=3, status="sending")
        )
        await session.commit()

    async def both() -> tuple[dict[str, object], dict[str, object]]:
        shown = await client.get(f"/v1/alerts/{alert}", headers=viewer)
        stats = await client.get(f"/v1/alerts/{alert}/stats", headers=viewer)
        assert (shown.status_code, stats.status_code) == (200, 200)
        return shown.json(), stats.json()

    shown, stats = await both()
    assert shown["status"] == stats["status"] == "cancelled"
    assert shown["targeted"] == stats["targeted"] == 1000
    assert shown["read_rate"] is None and stats["read_rate"] is None

    async with session_factory(engine)() as session, session.begin():
        row = await session.get(AlertStats, alert)
        assert row is not None
        row.delivered = 4
    shown, stats = await both()
    assert shown["read_rate"] == stats["read_rate"] == 0.75


async def test_an_unknown_alert_is_a_404_problem(
    client: httpx.AsyncClient, viewer: dict[str, str]
) -> None:
    alert = uuid.uuid4()
    response = await client.get(f"/v1/alerts/{alert}/stats", headers=viewer)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert str(alert) in response.json()["detail"]


async def test_stats_need_a_key_and_a_valid_id(
    client: httpx.AsyncClient, viewer: dict[str, str]
) -> None:
    assert (await client.get(f"/v1/alerts/{uuid.uuid4()}/stats")).status_code == 401
    response = await client.get("/v1/alerts/not-a-uuid/stats", headers=viewer)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
