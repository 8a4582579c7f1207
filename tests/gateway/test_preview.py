"""`POST /v1/alerts:preview`: the reach, the message as sent with its counts, the warnings,
the estimate with and without a send rate, the create path's 422s; and nothing is stored."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.gateway.bodies import AlertJson
from tests.gateway.conftest import BASE_URL
from tests.gateway.test_cap import cap_xml

from common.db import session_factory
from common.kakao_limits import MAX_BUTTON_NAME, MAX_BUTTONS, MAX_CONTENT, MAX_LINK, MAX_TITLE
from common.models import Alert, AuditEntry, OutboxEntry, Subscriber
from gateway.config import GatewaySettings
from gateway.main import create_app

PREVIEW = "/v1/alerts:preview"
KST = ZoneInfo("Asia/Seoul")


async def stored_counts(engine: AsyncEngine) -> tuple[int, int, int]:
    """(alerts, outbox records, audit rows): what a preview must leave as it was."""
    async with session_factory(engine)() as session:
        counts = [
            await session.scalar(select(func.count()).select_from(model))
            for model in (Alert, OutboxEntry, AuditEntry)
        ]
    return int(counts[0] or 0), int(counts[1] or 0), int(counts[2] or 0)


async def _districts(engine: AsyncEngine, **people: tuple[int, int]) -> dict[str, str]:
    """Fresh districts, each with (active, opted out) subscribers; their names by key."""
    names = {key: f"구-{key}-{uuid.uuid4().hex[:8]}" for key in people}
    async with session_factory(engine)() as session:
        for key, (active, opted_out) in people.items():
            for status, count in (("active", active), ("opted_out", opted_out)):
                session.add_all(
                    Subscriber(
                        recipient_no=f"016{uuid.uuid4().int % 10**8:08d}",
                        district=names[key],
                        tags=[],
                        status=status,
                    )
                    for _ in range(count)
                )
        await session.commit()
    return names


def _tomorrow_kst(hour: int, minute: int = 0) -> str:
    day = datetime.now(KST).date() + timedelta(days=2)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=KST).isoformat()


def _codes(response: httpx.Response) -> list[str]:
    return [w["code"] for w in response.json()["warnings"]]


async def test_preview_counts_the_reach_by_district_and_stores_nothing(
    client: httpx.AsyncClient, operator: dict[str, str], alert_json: AlertJson, engine: AsyncEngine
) -> None:
    names = await _districts(engine, a=(3, 2), b=(1, 0))
    before = await stored_counts(engine)
    body = alert_json(audience={"districts": [names["b"], names["a"]]})
    response = await client.post(PREVIEW, json=body, headers=operator)
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["recipients"] == 4
    assert preview["by_district"] == [
        {"district": names["a"], "recipients": 3},
        {"district": names["b"], "recipients": 1},
    ]
    assert preview["warnings"] == []
    assert await stored_counts(engine) == before


async def test_preview_shows_the_message_as_sent_with_its_counts(
    client: httpx.AsyncClient, operator: dict[str, str], alert_json: AlertJson
) -> None:
    body = alert_json(title="제목" * 5, body="본문" * 100, category="promotional")
    body["send_at"] = _tomorrow_kst(12)
    response = await client.post(PREVIEW, json=body, headers=operator)
    assert response.status_code == 200, response.text
    message = response.json()["message"]
    assert message["message_type"] == "BRAND"
    assert message["title"] == "제목" * 5
    assert message["title_chars"] == {"length": 10, "limit": MAX_TITLE}
    assert message["body_chars"] == {"length": 200, "limit": MAX_CONTENT}
    assert message["button_count"] == {"length": 2, "limit": MAX_BUTTONS}
    operator_button, read_more = message["buttons"]
    assert operator_button["name"] == "대피소"
    assert operator_button["name_chars"] == {"length": 3, "limit": MAX_BUTTON_NAME}
    link = "https://example.org/shelters"
    assert operator_button["link_chars"] == {"length": len(link), "limit": MAX_LINK}
    # the broadcaster's tracked "read more" button, filled with each recipient's link
    assert read_more["link"] == "#{link}"
    emergency = await client.post(PREVIEW, json=alert_json(), headers=operator)
    assert emergency.json()["message"]["message_type"] == "ALIMTALK"


async def test_promotional_in_quiet_hours_is_warned_and_starts_when_they_end(
    client: httpx.AsyncClient, operator: dict[str, str], alert_json: AlertJson
) -> None:
    # the default quiet hours: 20:50-08:00 Asia/Seoul
    night = alert_json(category="promotional", send_at=_tomorrow_kst(23, 30))
    response = await client.post(PREVIEW, json=night, headers=operator)
    assert response.status_code == 200, response.text
    assert _codes(response) == ["quiet_hours"]
    starts = datetime.fromisoformat(response.json()["estimate"]["starts_at"]).astimezone(KST)
    assert (starts.hour, starts.minute) == (8, 0)
    # the same time is no matter for an emergency, nor noon for a promotion
    for body in (
        alert_json(category="emergency", send_at=_tomorrow_kst(23, 30)),
        alert_json(category="promotional", send_at=_tomorrow_kst(12)),
    ):
        response = await client.post(PREVIEW, json=body, headers=operator)
        assert _codes(response) == [], response.text


async def test_send_at_in_the_past_is_warned_and_sent_now(
    client: httpx.AsyncClient, operator: dict[str, str], alert_json: AlertJson
) -> None:
    before = datetime.now(UTC)
    send_at = (before - timedelta(minutes=5)).isoformat()
    response = await client.post(PREVIEW, json=alert_json(send_at=send_at), headers=operator)
    assert response.status_code == 200, response.text
    assert _codes(response) == ["send_at_past"]
    assert datetime.fromisoformat(response.json()["estimate"]["starts_at"]) >= before


async def test_without_a_rate_the_estimate_says_so(
    client: httpx.AsyncClient, operator: dict[str, str], alert_json: AlertJson
) -> None:
    response = await client.post(PREVIEW, json=alert_json(), headers=operator)
    estimate = response.json()["estimate"]
    assert estimate["seconds"] is None
    assert estimate["ends_at"] is None
    assert estimate["rate_messages_per_second"] is None
    assert "No send rate is configured" in estimate["note"]


@pytest.fixture(scope="module")
async def rated_app(
    gateway_settings: GatewaySettings, seeded_subscribers: list[str]
) -> AsyncIterator[FastAPI]:
    """A gateway whose broadcasters send 2 messages a second."""
    app = create_app(
        gateway_settings.model_copy(update={"broadcaster_rate_messages_per_second": 2.0})
    )
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(app.state.gateway.kafka.ready.wait(), 60)
        yield app


async def test_with_a_rate_the_estimate_is_recipients_over_rate_and_expiry_is_warned(
    rated_app: FastAPI, operator: dict[str, str], alert_json: AlertJson, engine: AsyncEngine
) -> None:
    names = await _districts(engine, a=(10, 0))
    send_at = datetime.now(UTC) + timedelta(hours=1)
    body = alert_json(audience={"districts": [names["a"]]}, send_at=send_at.isoformat())
    transport = httpx.ASGITransport(app=rated_app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        response = await client.post(PREVIEW, json=body, headers=operator)
        assert response.status_code == 200, response.text
        estimate = response.json()["estimate"]
        assert estimate["rate_messages_per_second"] == 2.0
        assert estimate["seconds"] == 5.0
        assert datetime.fromisoformat(estimate["ends_at"]) == send_at + timedelta(seconds=5)
        assert _codes(response) == []
        # an expiry 3 s after the start falls before the estimated end (5 s)
        body["expires_at"] = (send_at + timedelta(seconds=3)).isoformat()
        response = await client.post(PREVIEW, json=body, headers=operator)
    assert _codes(response) == ["expires_before_end"], response.text


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"audience": {"districts": ["없는구"]}}, "audience.districts"),
        ({"audience": {"tags": ["없는태그"]}}, "audience.tags"),
        ({"title": "\u200b\u2060"}, "title"),
    ],
)
async def test_preview_refuses_what_create_refuses(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    alert_json: AlertJson,
    engine: AsyncEngine,
    change: dict[str, object],
    field: str,
) -> None:
    before = await stored_counts(engine)
    response = await client.post(PREVIEW, json=alert_json(**change), headers=operator)
    assert response.status_code == 422, response.text
    assert field in {e["field"] for e in response.json()["errors"]}
    created = await client.post("/v1/alerts", json=alert_json(**change), headers=operator)
    assert created.status_code == 422
    assert await stored_counts(engine) == before


async def test_preview_refuses_an_audience_of_nobody_and_a_repeated_key(
    client: httpx.AsyncClient, operator: dict[str, str], alert_json: AlertJson, engine: AsyncEngine
) -> None:
    names = await _districts(engine, gone=(0, 2))
    before = await stored_counts(engine)
    nobody = alert_json(audience={"districts": [names["gone"]]})
    response = await client.post(PREVIEW, json=nobody, headers=operator)
    assert response.status_code == 422, response.text
    assert "reaches nobody" in response.json()["detail"]
    repeated = b'{"title": "a", "title": "b", "body": "c", "category": "public", "audience": "all"}'
    response = await client.post(
        PREVIEW, content=repeated, headers={**operator, "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert "more than once" in response.text
    assert await stored_counts(engine) == before


async def test_preview_takes_cap_and_warns_of_a_held_test(
    client: httpx.AsyncClient, operator: dict[str, str], engine: AsyncEngine
) -> None:
    before = await stored_counts(engine)
    headers = {**operator, "Content-Type": "application/cap+xml"}
    response = await client.post(PREVIEW, content=cap_xml(status="Test"), headers=headers)
    assert response.status_code == 200, response.text
    assert _codes(response) == ["not_broadcast"]
    assert response.json()["recipients"] >= 1
    cancel = cap_xml(msg_type="Cancel", references="kma@weather.go.kr,X,2026-11-25T19:00:00+09:00")
    response = await client.post(PREVIEW, content=cancel, headers=headers)
    assert response.status_code == 422, response.text
    assert await stored_counts(engine) == before


async def test_preview_needs_the_operator_role(
    client: httpx.AsyncClient, viewer: dict[str, str], alert_json: AlertJson
) -> None:
    assert (await client.post(PREVIEW, json=alert_json(), headers=viewer)).status_code == 403
    assert (await client.post(PREVIEW, json=alert_json())).status_code == 401


async def test_openapi_describes_the_preview(client: httpx.AsyncClient) -> None:
    operation = (await client.get("/openapi.json")).json()["paths"][PREVIEW]["post"]
    assert {"200", "401", "403", "413", "415", "422"} <= set(operation["responses"])
    assert "application/cap+xml" in operation["requestBody"]["content"]
