"""What the intake refuses before it stores anything: unknown districts and tags, an audience
that reaches nobody, a JSON key given twice, a `send_at` long past, invisible text; and one
CAP alert however its `sent` instant is written."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.gateway.bodies import AlertJson
from tests.gateway.conftest import BASE_URL, SEEDED_DISTRICTS, SEEDED_TAGS
from tests.gateway.test_cap import cap_xml

from common.db import session_factory
from common.messages import Audience
from common.models import Alert, OutboxEntry, Subscriber
from gateway import audiences
from gateway.config import GatewaySettings
from gateway.main import create_app

CAP = {"Content-Type": "application/cap+xml"}


async def _stored(engine: AsyncEngine) -> tuple[int, int]:
    """(alerts, outbox records): what a refused request must leave as it was."""
    async with session_factory(engine)() as session:
        alerts = await session.scalar(select(func.count()).select_from(Alert))
        outbox = await session.scalar(select(func.count()).select_from(OutboxEntry))
    return int(alerts or 0), int(outbox or 0)


async def _subscribers(engine: AsyncEngine, *rows: tuple[str | None, list[str], str]) -> None:
    """Add subscribers (district, tags, status) with fresh numbers."""
    async with session_factory(engine)() as session:
        session.add_all(
            Subscriber(
                recipient_no=f"017{uuid.uuid4().int % 10**8:08d}",
                district=district,
                tags=tags,
                status=status,
            )
            for district, tags, status in rows
        )
        await session.commit()


def _fields(response: httpx.Response) -> dict[str, str]:
    return {e["field"]: e["message"] for e in response.json()["errors"]}


async def test_unknown_district_is_a_422_listing_the_known_ones(
    client: httpx.AsyncClient, operator: dict[str, str], alert_json: AlertJson, engine: AsyncEngine
) -> None:
    before = await _stored(engine)
    response = await client.post(
        "/v1/alerts",
        json=alert_json(audience={"districts": ["장안구", "없는구"]}),
        headers=operator,
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["title"] == "Invalid audience"
    assert "'없는구'" in problem["detail"]
    assert set(SEEDED_DISTRICTS) <= set(problem["known"]["districts"])
    assert "없는구" not in problem["known"]["districts"]
    message = _fields(response)["audience.districts"]
    assert "'없는구'" in message and "'장안구'" in message
    assert await _stored(engine) == before


async def test_unknown_tag_is_a_422_listing_the_known_ones(
    client: httpx.AsyncClient, operator: dict[str, str], alert_json: AlertJson, engine: AsyncEngine
) -> None:
    before = await _stored(engine)
    response = await client.post(
        "/v1/alerts",
        json=alert_json(audience={"districts": ["장안구"], "tags": ["bus", "buss"]}),
        headers=operator,
    )
    assert response.status_code == 422, response.text
    assert set(SEEDED_TAGS) <= set(response.json()["known"]["tags"])
    assert "buss" not in response.json()["known"]["tags"]
    assert "'buss'" in _fields(response)["audience.tags"]
    assert "audience.districts" not in _fields(response)
    assert await _stored(engine) == before


async def test_audience_of_opted_out_subscribers_reaches_nobody(
    client: httpx.AsyncClient, operator: dict[str, str], alert_json: AlertJson, engine: AsyncEngine
) -> None:
    quiet, tag = f"조용구-{uuid.uuid4().hex[:6]}", f"t-{uuid.uuid4().hex[:6]}"
    # known (someone has them), but nobody active matches: the district's one subscriber
    # opted out, and the tag's active subscriber lives elsewhere
    await _subscribers(engine, (quiet, [], "opted_out"), ("영통구", [tag], "active"))
    before = await _stored(engine)
    for audience in ({"districts": [quiet]}, {"districts": ["장안구"], "tags": [tag]}):
        response = await client.post(
            "/v1/alerts", json=alert_json(audience=audience), headers=operator
        )
        assert response.status_code == 422, response.text
        assert "reaches nobody" in response.json()["detail"]
        assert _fields(response) == {"audience": "This audience reaches nobody."}
        assert "known" not in response.json()
    assert await _stored(engine) == before
    # the same tag where its subscriber lives is accepted
    accepted = await client.post(
        "/v1/alerts",
        json=alert_json(audience={"districts": ["영통구"], "tags": [tag]}),
        headers=operator,
    )
    assert accepted.status_code == 202, accepted.text


async def test_reach_counts_active_subscribers_by_district(engine: AsyncEngine) -> None:
    tag = f"r-{uuid.uuid4().hex[:6]}"
    await _subscribers(
        engine,
        ("권선구", [tag], "active"),
        ("권선구", [tag, "x"], "active"),
        ("팔달구", [tag], "active"),
        ("팔달구", [tag], "opted_out"),
        (None, [tag], "active"),
    )
    async with session_factory(engine)() as session:
        everywhere = await audiences.reach(session, Audience(tags=[tag]))
        one = await audiences.reach(session, Audience(districts=["팔달구"], tags=[tag]))
        everyone = await audiences.reach(session, Audience(all=True))
    assert everywhere == audiences.Reach(by_district={"권선구": 2, "팔달구": 1, None: 1}, total=4)
    assert one == audiences.Reach(by_district={"팔달구": 1}, total=1)
    assert everyone.total >= 4 + len(SEEDED_DISTRICTS)
    assert everyone.total == sum(everyone.by_district.values())


@pytest.fixture(scope="module")
def area_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CAP areas mapped to a district nobody has, one whose subscribers all opted out, and
    장안구."""
    table = tmp_path_factory.mktemp("areas") / "areas.csv"
    table.write_text("area,district\n없는동,없는구\n조용동,조용한구\n장안동,장안구\n", "utf-8")
    return table


@pytest.fixture(scope="module")
async def mapped_app(
    gateway_settings: GatewaySettings, seeded_subscribers: list[str], area_table: Path
) -> AsyncIterator[FastAPI]:
    """A gateway with the `area_table`."""
    app = create_app(gateway_settings.model_copy(update={"gateway_cap_area_map": area_table}))
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(app.state.gateway.kafka.ready.wait(), 60)
        yield app


async def test_cap_alert_to_an_unknown_or_empty_district_is_a_422(
    mapped_app: FastAPI, operator: dict[str, str], engine: AsyncEngine
) -> None:
    await _subscribers(engine, ("조용한구", [], "opted_out"))
    before = await _stored(engine)
    transport = httpx.ASGITransport(app=mapped_app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        unknown = await client.post(
            "/v1/alerts",
            content=cap_xml(identifier=f"U-{uuid.uuid4().hex[:8]}", area=_area("없는동")),
            headers={**operator, **CAP},
        )
        nobody = await client.post(
            "/v1/alerts",
            content=cap_xml(identifier=f"N-{uuid.uuid4().hex[:8]}", area=_area("조용동")),
            headers={**operator, **CAP},
        )
        assert await _stored(engine) == before
        known = await client.post(
            "/v1/alerts",
            content=cap_xml(identifier=f"K-{uuid.uuid4().hex[:8]}", area=_area("장안동")),
            headers={**operator, **CAP},
        )
    assert unknown.status_code == 422, unknown.text
    assert "'없는구'" in _fields(unknown)["audience.districts"]
    assert "장안구" in unknown.json()["known"]["districts"]
    assert nobody.status_code == 422, nobody.text
    assert "reaches nobody" in nobody.json()["detail"]
    assert known.status_code == 202, known.text


def _area(description: str) -> str:
    return f"<area><areaDesc>{description}</areaDesc></area>"


async def test_cap_sent_is_compared_as_an_instant(
    client: httpx.AsyncClient, operator: dict[str, str], engine: AsyncEngine
) -> None:
    identifier = f"KMA-{uuid.uuid4().hex[:8]}"
    spellings = (
        "2026-11-25T11:00:00+00:00",
        "2026-11-25T11:00:00-00:00",
        "2026-11-25T20:00:00+09:00",
    )
    before = await _stored(engine)
    answers = [
        await client.post(
            "/v1/alerts",
            content=cap_xml(identifier=identifier, sent=sent),
            headers={**operator, **CAP},
        )
        for sent in spellings
    ]
    assert [a.status_code for a in answers] == [202, 200, 200], [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    # one alert and its one AlertRequested record
    assert await _stored(engine) == (before[0] + 1, before[1] + 1)
    async with session_factory(engine)() as session:
        alert = await session.get(Alert, uuid.UUID(answers[0].json()["id"]))
    assert alert is not None and alert.cap_sent == "2026-11-25T11:00:00+00:00"
    # a Cancel that writes the reference's instant a fourth way still finds it
    cancel = cap_xml(
        identifier=f"{identifier}-C",
        msg_type="Cancel",
        references=f"kma@weather.go.kr,{identifier},2026-11-25T06:00:00-05:00",
        sent="2026-11-25T20:30:00+09:00",
    )
    cancelled = await client.post("/v1/alerts", content=cancel, headers={**operator, **CAP})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["id"] == answers[0].json()["id"]
    assert cancelled.json()["status"] == "cancelled"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            b'{"title": "t", "body": "b", "category": "emergency", "audience": "all",'
            b' "category": "public"}',
            "category",
        ),
        (
            b'{"title": "t", "body": "b", "category": "public", "audience": "all",'
            b' "buttons": [{"name": "a", "link": "https://a.example", "name": "b"}]}',
            "buttons[0].name",
        ),
        (
            b'{"title": "t", "body": "b", "category": "public",'
            b' "audience": {"districts": ["\xec\x9e\xa5\xec\x95\x88\xea\xb5\xac"],'
            b' "districts": ["x"]}}',
            "audience.districts",
        ),
    ],
)
async def test_a_json_key_given_twice_is_a_422_naming_it(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    engine: AsyncEngine,
    body: bytes,
    field: str,
) -> None:
    before = await _stored(engine)
    response = await client.post(
        "/v1/alerts", content=body, headers={**operator, "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]
    assert "more than once" in _fields(response)[field]
    assert await _stored(engine) == before


async def test_send_at_long_past_is_a_422_and_a_few_minutes_past_is_sent_now(
    client: httpx.AsyncClient, operator: dict[str, str], alert_json: AlertJson, engine: AsyncEngine
) -> None:
    before = await _stored(engine)
    for past in (timedelta(days=365 * 30), timedelta(minutes=61)):
        send_at = (datetime.now(UTC) - past).isoformat()
        response = await client.post(
            "/v1/alerts", json=alert_json(send_at=send_at), headers=operator
        )
        assert response.status_code == 422, response.text
        assert "in the past" in _fields(response)["send_at"]
    assert await _stored(engine) == before
    recent = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    response = await client.post("/v1/alerts", json=alert_json(send_at=recent), headers=operator)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"


async def test_the_past_bound_is_a_setting(
    gateway_settings: GatewaySettings,
    seeded_subscribers: list[str],
    operator: dict[str, str],
    alert_json: AlertJson,
) -> None:
    app = create_app(gateway_settings.model_copy(update={"gateway_send_at_max_past_minutes": 1}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            send_at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
            response = await client.post(
                "/v1/alerts", json=alert_json(send_at=send_at), headers=operator
            )
    assert response.status_code == 422, response.text
    assert set(_fields(response)) == {"send_at"}


@pytest.mark.parametrize(
    "invisible",
    [
        "\u200b\u200b\u200b",  # zero-width spaces
        "\u00a0\u3000\u2003",  # no-break, ideographic and em spaces
        "\ufeff\u2060\u200d",  # byte order mark, word joiner, zero-width joiner
        "\u3164\u3164",  # Hangul filler
        "\u200b \u00a0\u2800",  # mixed, with a blank Braille pattern
    ],
)
async def test_title_or_body_of_invisible_characters_is_a_422(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    alert_json: AlertJson,
    engine: AsyncEngine,
    invisible: str,
) -> None:
    before = await _stored(engine)
    for field in ("title", "body"):
        response = await client.post(
            "/v1/alerts", json=alert_json(**{field: invisible}), headers=operator
        )
        assert response.status_code == 422, response.text
        # spaces Python strips leave an empty string ("at least 1 character"); the others
        # are named as invisible
        expected = "at least 1 character" if not invisible.strip() else "visible character"
        assert expected in _fields(response)[field]
    assert await _stored(engine) == before
    # invisible characters inside visible text are text like any other
    response = await client.post(
        "/v1/alerts", json=alert_json(body=f"대피{invisible}하세요"), headers=operator
    )
    assert response.status_code == 202, response.text


async def test_openapi_describes_the_intake_422(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    refused = spec["paths"]["/v1/alerts"]["post"]["responses"]["422"]
    assert "application/problem+json" in refused["content"]
    for words in ("given twice", "reaches no active subscriber", "district or tag", "in the past"):
        assert words in refused["description"]
    # other routes keep the generic description
    listed = spec["paths"]["/v1/alerts"]["get"]["responses"]["422"]
    assert listed["description"] == "A field is invalid; `errors` names each one."
    send_at = spec["components"]["schemas"]["AlertCreate"]["properties"]["send_at"]
    assert "ALLIM_GATEWAY_SEND_AT_MAX_PAST_MINUTES" in send_at["description"]
