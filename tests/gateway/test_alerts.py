"""POST/GET /v1/alerts with JSON: validation, auth, status, list, against the real stack."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.gateway.bodies import AlertJson
from tests.waiting import eventually

from common.db import session_factory
from common.messages import AlertRequested
from common.models import Alert, AlertStats, OutboxEntry
from common.readback import read_back
from common.topics import ALERTS_REQUESTED
from gateway.schemas import READ_MORE

pytestmark = pytest.mark.integration


async def _outbox_rows(engine: AsyncEngine, alert_id: str) -> list[OutboxEntry]:
    async with session_factory(engine)() as session:
        return list(
            (await session.scalars(select(OutboxEntry).where(OutboxEntry.key == alert_id))).all()
        )


async def _alert_count(engine: AsyncEngine) -> int:
    async with session_factory(engine)() as session:
        return int(await session.scalar(select(func.count()).select_from(Alert)) or 0)


async def test_post_accepts_and_publishes_the_alert(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    alert_json: AlertJson,
    engine: AsyncEngine,
    kafka_topics: str,
) -> None:
    response = await client.post("/v1/alerts", json=alert_json(), headers=operator)
    assert response.status_code == 202, response.text
    accepted = response.json()
    alert_id = accepted["id"]
    assert accepted["status"] == "queued"
    assert accepted["status_url"] == f"http://gateway.test/v1/alerts/{alert_id}"
    assert response.headers["location"] == accepted["status_url"]

    records = await read_back(kafka_topics, ALERTS_REQUESTED, {alert_id})
    assert len(records) == 1
    message = AlertRequested.model_validate_json(records[0].value)
    assert str(message.alert_id) == alert_id
    assert message.title == "태풍 링링 대비 안내"
    assert message.audience.districts == ["장안구"]
    # the operator's button, then allim's tracked read-more button
    assert [b.name for b in message.buttons] == ["대피소", READ_MORE.name]
    assert message.buttons[-1].link == "#{link}"

    assert len(await _outbox_rows(engine, alert_id)) == 1

    async def relayed() -> bool:
        (row,) = await _outbox_rows(engine, alert_id)
        return row.sent_at is not None

    await eventually(relayed, what="the outbox row marked sent")


async def test_get_shows_status_counters_and_read_rate(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    viewer: dict[str, str],
    alert_json: AlertJson,
    engine: AsyncEngine,
) -> None:
    created = await client.post("/v1/alerts", json=alert_json(), headers=operator)
    alert_id = created.json()["id"]

    fresh = (await client.get(f"/v1/alerts/{alert_id}", headers=viewer)).json()
    assert fresh["status"] == "queued"
    assert (fresh["targeted"], fresh["delivered"], fresh["failed"], fresh["pending"]) == (0,) * 4
    assert fresh["read_rate"] is None
    assert fresh["readers"] is None

    # what the broadcaster and analytics write
    async with session_factory(engine)() as session, session.begin():
        alert = await session.get(Alert, uuid.UUID(alert_id))
        assert alert is not None
        alert.status, alert.targeted, alert.delivered, alert.failed = "sending", 100, 60, 5
        session.add(AlertStats(alert_id=alert.id, delivered=60, readers=75))
    sending = (await client.get(f"/v1/alerts/{alert_id}", headers=viewer)).json()
    assert sending["status"] == "sending"
    assert (sending["targeted"], sending["delivered"], sending["failed"]) == (100, 60, 5)
    assert sending["pending"] == 35
    assert sending["readers"] == 75
    assert sending["read_rate"] == pytest.approx(1.25)


async def test_get_unknown_alert_is_404(client: httpx.AsyncClient, viewer: dict[str, str]) -> None:
    response = await client.get(f"/v1/alerts/{uuid.uuid4()}", headers=viewer)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    bad = await client.get("/v1/alerts/not-a-uuid", headers=viewer)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "alert_id"


async def test_send_at_in_the_future_is_scheduled(
    client: httpx.AsyncClient, operator: dict[str, str], alert_json: AlertJson
) -> None:
    later = datetime.now(UTC) + timedelta(hours=2)
    body = alert_json(
        send_at=later.isoformat(), expires_at=(later + timedelta(hours=1)).isoformat()
    )
    response = await client.post("/v1/alerts", json=body, headers=operator)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "scheduled"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"title": "가" * 51}, "title"),
        ({"title": "   "}, "title"),
        ({"body": "나" * 1301}, "body"),
        ({"category": "spam"}, "category"),
        ({"buttons": [{"name": "b", "link": "https://e.org"}] * 5}, "buttons"),
        (
            {"buttons": [{"name": "열네글자를넘는아주긴버튼이름이요", "link": "https://e.org"}]},
            "buttons[0].name",
        ),
        ({"buttons": [{"name": "b", "link": "https://e.org/" + "x" * 500}]}, "buttons[0].link"),
        ({"buttons": [{"name": "b", "link": "javascript:alert(1)"}]}, "buttons[0].link"),
        ({"audience": {}}, "audience"),
        ({"audience": {"districts": [], "tags": []}}, "audience"),
        ({"audience": "everyone"}, "audience"),
        ({"audience": {"all": True, "districts": ["장안구"]}}, "audience"),
        ({"expires_at": "2020-01-01T00:00:00+09:00"}, "expires_at"),
        ({"send_at": "2030-01-02T00:00:00Z", "expires_at": "2030-01-01T00:00:00Z"}, "expires_at"),
        ({"send_at": "2030-01-02T00:00:00"}, "send_at"),
        ({"colour": "red"}, "colour"),
        ({"title": "nul\x00"}, "title"),
        ({"body": "lone \ud800 surrogate"}, "body"),
        ({"audience": {"districts": ["a\x00b"]}}, "audience.districts[0]"),
        ({"buttons": [{"name": "b", "link": "http://\x17"}]}, "buttons[0].link"),
        # a number as text is not the integer the document asks for
        ({"deliver_within": "600"}, "deliver_within"),
        ({"fallback": {"codes": ["3018"]}}, "fallback.codes[0]"),
    ],
)
async def test_invalid_field_is_a_422_naming_it(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    alert_json: AlertJson,
    engine: AsyncEngine,
    changes: dict[str, Any],
    field: str,
) -> None:
    before = await _alert_count(engine)
    # ASCII-escaped JSON, so a lone surrogate reaches the gateway as the JSON text "\ud800"
    response = await client.post(
        "/v1/alerts",
        content=json.dumps(alert_json(**changes)).encode(),
        headers={**operator, "content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert field in [e["field"] for e in problem["errors"]], problem
    assert field in problem["detail"]
    assert await _alert_count(engine) == before


async def test_missing_fields_and_bad_json_are_422(
    client: httpx.AsyncClient, operator: dict[str, str], engine: AsyncEngine
) -> None:
    before = await _alert_count(engine)
    missing = await client.post("/v1/alerts", json={"title": "x"}, headers=operator)
    assert missing.status_code == 422
    fields = {e["field"] for e in missing.json()["errors"]}
    assert {"body", "category", "audience"} <= fields
    broken = await client.post(
        "/v1/alerts",
        content=b'{"title": ',
        headers={**operator, "content-type": "application/json"},
    )
    assert broken.status_code == 422
    assert broken.headers["content-type"] == "application/problem+json"
    assert await _alert_count(engine) == before


async def test_other_content_types_and_huge_bodies_are_refused(
    client: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    text = await client.post(
        "/v1/alerts", content=b"hello", headers={**operator, "content-type": "text/plain"}
    )
    assert text.status_code == 415
    huge = await client.post(
        "/v1/alerts",
        content=orjson.dumps({"body": "x" * 300_000}),
        headers={**operator, "content-type": "application/json"},
    )
    assert huge.status_code == 413


async def test_audience_all_as_a_string(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    viewer: dict[str, str],
    alert_json: AlertJson,
) -> None:
    response = await client.post("/v1/alerts", json=alert_json(audience="all"), headers=operator)
    assert response.status_code == 202, response.text
    shown = (await client.get(response.json()["status_url"], headers=viewer)).json()
    assert shown["audience"] == {"all": True, "districts": [], "tags": [], "recipients_of": None}


async def test_mutations_need_an_operator_key(
    client: httpx.AsyncClient,
    viewer: dict[str, str],
    alert_json: AlertJson,
    engine: AsyncEngine,
) -> None:
    before = await _alert_count(engine)
    anonymous = await client.post("/v1/alerts", json=alert_json())
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    forged = await client.post(
        "/v1/alerts", json=alert_json(), headers={"X-API-Key": "allim_abc_def"}
    )
    assert forged.status_code == 401
    reader = await client.post("/v1/alerts", json=alert_json(), headers=viewer)
    assert reader.status_code == 403
    cancel = await client.post(f"/v1/alerts/{uuid.uuid4()}/cancel", headers=viewer)
    assert cancel.status_code == 403
    assert await _alert_count(engine) == before


async def test_reads_need_a_key(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/alerts")).status_code == 401
    assert (await client.get(f"/v1/alerts/{uuid.uuid4()}")).status_code == 401
    assert (await client.get(f"/v1/alerts/{uuid.uuid4()}/events")).status_code == 401


async def test_list_pages_through_every_alert_once(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    viewer: dict[str, str],
    alert_json: AlertJson,
) -> None:
    created = set()
    for n in range(7):
        response = await client.post(
            "/v1/alerts", json=alert_json(title=f"page {n}"), headers=operator
        )
        created.add(response.json()["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        page = (await client.get("/v1/alerts", params=params, headers=viewer)).json()
        assert len(page["items"]) <= 3
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert created <= set(seen)
    created_at = [
        (await client.get(f"/v1/alerts/{i}", headers=viewer)).json()["created_at"] for i in seen[:4]
    ]
    assert created_at == sorted(created_at, reverse=True)


async def test_list_refuses_bad_cursor_and_limit(
    client: httpx.AsyncClient, viewer: dict[str, str]
) -> None:
    bad_cursor = await client.get("/v1/alerts", params={"cursor": "!!nope"}, headers=viewer)
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["errors"][0]["field"] == "cursor"
    bad_limit = await client.get("/v1/alerts", params={"limit": 0}, headers=viewer)
    assert bad_limit.status_code == 422
    assert bad_limit.json()["errors"][0]["field"] == "limit"


async def test_list_filters_by_status(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    viewer: dict[str, str],
    alert_json: AlertJson,
) -> None:
    alert_id = (await client.post("/v1/alerts", json=alert_json(), headers=operator)).json()["id"]
    await client.post(f"/v1/alerts/{alert_id}/cancel", headers=operator)
    page = (
        await client.get(
            "/v1/alerts", params={"status": "cancelled", "limit": 1000}, headers=viewer
        )
    ).json()
    assert alert_id in [item["id"] for item in page["items"]]
    assert {item["status"] for item in page["items"]} == {"cancelled"}
    bad = await client.get("/v1/alerts", params={"status": "lost"}, headers=viewer)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "status"


async def test_an_alerts_audience_posted_back_as_shown_is_accepted(
    client: httpx.AsyncClient, operator: dict[str, str], alert_json: AlertJson
) -> None:
    first = (await client.post("/v1/alerts", json=alert_json(), headers=operator)).json()
    shown = (await client.get(f"/v1/alerts/{first['id']}", headers=operator)).json()
    assert shown["audience"]["recipients_of"] is None
    again = await client.post(
        "/v1/alerts", json=alert_json(audience=shown["audience"]), headers=operator
    )
    assert again.status_code == 202, again.text
    frozen = alert_json(audience={"districts": ["장안구"], "recipients_of": str(first["id"])})
    refused = await client.post("/v1/alerts", json=frozen, headers=operator)
    assert refused.status_code == 422
