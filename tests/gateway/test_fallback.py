"""The SMS/LMS fallback at the gateway, against the real app and PostgreSQL: what an alert
stores, what the preview shows, and the texts that are refused (and leave nothing)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.gateway.bodies import AlertJson

from common.db import session_factory
from common.models import Alert

pytestmark = pytest.mark.integration


async def _stored(engine: AsyncEngine, alert_id: str) -> Alert:
    async with session_factory(engine)() as session:
        alert = await session.get(Alert, uuid.UUID(alert_id))
        assert alert is not None
        return alert


async def _count(engine: AsyncEngine) -> int:
    async with session_factory(engine)() as session:
        return int(await session.scalar(select(func.count()).select_from(Alert)) or 0)


async def test_a_public_alert_falls_back_by_default_with_its_lms(
    client: httpx.AsyncClient, operator: dict[str, str], engine: AsyncEngine, alert_json: AlertJson
) -> None:
    body = "가" * 50  # 100 bytes: an LMS
    created = await client.post(
        "/v1/alerts", json=alert_json(category="public", body=body), headers=operator
    )
    assert created.status_code == 202, created.text
    alert = await _stored(engine, created.json()["id"])
    assert alert.fallback_codes == [3018, 3019, 3020]
    assert (alert.sms_kind, alert.sms_subject) == ("LMS", alert_json()["title"])
    assert alert.sms_text == f"{body}\n#{{link}}"


async def test_promotional_has_none_unless_asked_and_then_its_marks(
    client: httpx.AsyncClient, operator: dict[str, str], engine: AsyncEngine, alert_json: AlertJson
) -> None:
    plain = await client.post(
        "/v1/alerts", json=alert_json(category="promotional"), headers=operator
    )
    assert (await _stored(engine, plain.json()["id"])).fallback_codes is None
    asked = await client.post(
        "/v1/alerts",
        json=alert_json(category="promotional", fallback={"enabled": True, "codes": [3019]}),
        headers=operator,
    )
    alert = await _stored(engine, asked.json()["id"])
    assert alert.fallback_codes == [3019]
    assert alert.sms_text is not None and alert.sms_text.startswith("(광고)")
    assert "무료수신거부" in alert.sms_text


async def test_texts_sms_cannot_carry_are_refused_or_replaced(
    client: httpx.AsyncClient, operator: dict[str, str], engine: AsyncEngine, alert_json: AlertJson
) -> None:
    before = await _count(engine)
    emoji = alert_json(title="태풍 🌀 안내")
    refused = await client.post("/v1/alerts", json=emoji, headers=operator)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "fallback"
    assert "🌀" in refused.json()["detail"]
    too_long = alert_json(body="가" * 60, fallback={"only_sms": True})
    refused = await client.post("/v1/alerts", json=too_long, headers=operator)
    assert refused.status_code == 422
    assert "at most 90 fit" in refused.json()["detail"]
    assert await _count(engine) == before

    replaced = await client.post(
        "/v1/alerts", json=emoji | {"fallback": {"unencodable": "replace"}}, headers=operator
    )
    assert replaced.status_code == 202
    alert = await _stored(engine, replaced.json()["id"])
    assert alert.sms_subject == "태풍 ? 안내"
    assert alert.title == "태풍 🌀 안내"  # KakaoTalk carries it as it is
    # no fallback asked: KakaoTalk alone, and the emoji is fine
    off = await client.post(
        "/v1/alerts", json=emoji | {"fallback": {"enabled": False}}, headers=operator
    )
    assert off.status_code == 202


async def test_the_preview_shows_the_sms_and_its_bytes(
    client: httpx.AsyncClient, operator: dict[str, str], alert_json: AlertJson
) -> None:
    shown = await client.post(
        "/v1/alerts:preview", json=alert_json(title="호우", body="대피"), headers=operator
    )
    assert shown.status_code == 200, shown.text
    sms = shown.json()["sms"]
    assert (sms["kind"], sms["fallback_codes"]) == ("SMS", [3018, 3019, 3020])
    assert sms["bytes"]["limit"] == 90
    assert sms["bytes"]["length"] <= 90
    off = await client.post(
        "/v1/alerts:preview", json=alert_json(fallback={"enabled": False}), headers=operator
    )
    assert off.json()["sms"] is None


@pytest.mark.parametrize(
    "fallback",
    [{"codes": [12]}, {"unencodable": "drop"}, {"only_sms": "yes"}, {"channel": "fax"}],
)
async def test_a_bad_fallback_field_is_a_422(
    fallback: dict[str, object],
    client: httpx.AsyncClient,
    operator: dict[str, str],
    alert_json: AlertJson,
) -> None:
    refused = await client.post("/v1/alerts", json=alert_json(fallback=fallback), headers=operator)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"].startswith("fallback")
