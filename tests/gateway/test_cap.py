"""CAP 1.2 intake: parsing and mapping (unit), and POST /v1/alerts as application/cap+xml."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from common.db import session_factory
from common.models import Alert, OutboxEntry
from common.topics import ALERTS_CONTROL, ALERTS_REQUESTED
from gateway.cap import AreaTable, CapInvalid, CapUnsafe, parse
from gateway.config import DEFAULT_CAP_AREAS

CAP = {"content-type": "application/cap+xml"}
AREAS = AreaTable.load(DEFAULT_CAP_AREAS)
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def cap_xml(
    *,
    identifier: str = "KMA-2026-0001",
    sender: str = "kma@weather.go.kr",
    sent: str = "2026-11-25T19:00:00+09:00",
    status: str = "Actual",
    msg_type: str = "Alert",
    scope: str = "Public",
    references: str | None = None,
    info: str | None = None,
    area: str = "<area><areaDesc>장안구</areaDesc></area>",
    expires: str | None = None,
) -> bytes:
    expires = expires or (datetime.now(UTC) + timedelta(days=1)).isoformat()
    if info is None:
        info = f"""
  <info>
    <language>ko-KR</language>
    <category>Met</category>
    <event>태풍</event>
    <urgency>Immediate</urgency>
    <severity>Severe</severity>
    <certainty>Observed</certainty>
    <headline>태풍 링링 북상, 외출 자제</headline>
    <description>강풍과 폭우가 예상됩니다.</description>
    <instruction>창문을 닫고 실내에 머무르세요.</instruction>
    <web>https://www.weather.go.kr/typhoon</web>
    <expires>{expires}</expires>
    {area}
  </info>"""
    refs = f"<references>{references}</references>" if references else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier>
  <sender>{sender}</sender>
  <sent>{sent}</sent>
  <status>{status}</status>
  <msgType>{msg_type}</msgType>
  <scope>{scope}</scope>
  {refs}
  {info}
</alert>""".encode()


# --- parsing (no I/O) -------------------------------------------------------------------


def test_parse_maps_info_to_an_alert() -> None:
    parsed = parse(cap_xml(), AREAS, NOW)
    assert parsed.origin.identifier == "KMA-2026-0001"
    assert parsed.hold is None
    request = parsed.request
    assert request is not None
    assert request.title == "태풍 링링 북상, 외출 자제"
    assert request.body == "강풍과 폭우가 예상됩니다.\n\n창문을 닫고 실내에 머무르세요."
    assert request.category == "emergency"
    assert request.audience.districts == ["장안구"]
    assert [b.link for b in request.buttons] == ["https://www.weather.go.kr/typhoon"]


def test_geocode_wins_over_area_description_and_city_means_all() -> None:
    geocoded = (
        "<area><areaDesc>어딘가</areaDesc>"
        "<geocode><valueName>SIG_CD</valueName><value>41117</value></geocode></area>"
    )
    parsed = parse(cap_xml(area=geocoded), AREAS, NOW)
    assert parsed.request is not None
    assert parsed.request.audience.districts == ["영통구"]
    city = parse(cap_xml(area="<area><areaDesc>수원시</areaDesc></area>"), AREAS, NOW)
    assert city.request is not None
    assert city.request.audience.all


def test_area_table_from_json(tmp_path: Path) -> None:
    table = tmp_path / "areas.json"
    table.write_text('{"Downtown": "중구"}', encoding="utf-8")
    parsed = parse(
        cap_xml(area="<area><areaDesc>downtown</areaDesc></area>"), AreaTable.load(table), NOW
    )
    assert parsed.request is not None
    assert parsed.request.audience.districts == ["중구"]
    bad = tmp_path / "bad.csv"
    bad.write_text("name,place\nx,y\n", encoding="utf-8")
    with pytest.raises(ValueError, match="area,district"):
        AreaTable.load(bad)


def test_long_headline_and_body_are_cut_to_the_provider_limits() -> None:
    info = cap_xml().decode().replace("태풍 링링 북상, 외출 자제", "가" * 80)
    info = info.replace("강풍과 폭우가 예상됩니다.", "나" * 2000)
    parsed = parse(info.encode(), AREAS, NOW)
    assert parsed.request is not None
    assert len(parsed.request.title) == 50
    assert parsed.request.title.endswith("…")
    assert len(parsed.request.body) == 1300


@pytest.mark.parametrize("status", ["Test", "Exercise", "Draft", "System"])
def test_non_actual_statuses_are_held(status: str) -> None:
    parsed = parse(cap_xml(status=status), AREAS, NOW)
    assert parsed.hold is not None
    assert status in parsed.hold


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (cap_xml(identifier=""), "alert.identifier"),
        (cap_xml(sender="two words"), "alert.sender"),
        (cap_xml(sent="yesterday"), "alert.sent"),
        (cap_xml(sent="2026-11-25T19:00:00"), "alert.sent"),
        (cap_xml(status="Maybe"), "alert.status"),
        (cap_xml(msg_type="Ack"), "alert.msgType"),
        (cap_xml(scope="Galaxy"), "alert.scope"),
        (cap_xml(info=""), "alert.info"),
        (cap_xml(msg_type="Cancel"), "alert.references"),
        (cap_xml(msg_type="Cancel", references="only-two,parts"), "alert.references"),
        (cap_xml(area="<area><areaDesc>Atlantis</areaDesc></area>"), "info.area.areaDesc"),
        (cap_xml(expires="2020-01-01T00:00:00+09:00"), "info.expires"),
        (cap_xml().replace(b"<urgency>Immediate</urgency>", b""), "info.urgency"),
        (
            cap_xml().replace(b"<category>Met</category>", b"<category>Nope</category>"),
            "info.category",
        ),
        (cap_xml().replace(b"<event>\xed\x83\x9c\xed\x92\x8d</event>", b""), "info.event"),
        (b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.1"/>', "alert"),
    ],
)
def test_invalid_cap_names_the_element(document: bytes, field: str) -> None:
    with pytest.raises(CapInvalid) as caught:
        parse(document, AREAS, NOW)
    assert field in [e["field"] for e in caught.value.errors]


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol3;</identifier></alert>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE alert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&xxe;</identifier></alert>"""
MALFORMED = b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'><identifier>x</alert>"
EUC_KR = '<?xml version="1.0" encoding="EUC-KR"?><alert/>'.encode("euc-kr")


@pytest.mark.parametrize("document", [BOMB, EXTERNAL, MALFORMED, EUC_KR, b"", b"not xml at all"])
def test_unsafe_or_malformed_xml_is_refused(document: bytes) -> None:
    with pytest.raises(CapUnsafe):
        parse(document, AREAS, NOW)


# --- over HTTP, against the real stack ---------------------------------------------------


async def _alerts(engine: AsyncEngine, *where: Any) -> list[Alert]:
    async with session_factory(engine)() as session:
        return list((await session.scalars(select(Alert).where(*where))).all())


async def _outbox_count(engine: AsyncEngine, key: str, topic: str) -> int:
    async with session_factory(engine)() as session:
        query = select(func.count()).select_from(OutboxEntry)
        query = query.where(OutboxEntry.key == key, OutboxEntry.topic == topic)
        return int(await session.scalar(query) or 0)


@pytest.mark.integration
async def test_cap_alert_is_accepted_once(
    client: httpx.AsyncClient, operator: dict[str, str], engine: AsyncEngine
) -> None:
    document = cap_xml(identifier=f"KMA-{uuid.uuid4().hex[:8]}")
    first = await client.post("/v1/alerts", content=document, headers={**operator, **CAP})
    assert first.status_code == 202, first.text
    repeat = await client.post("/v1/alerts", content=document, headers={**operator, **CAP})
    assert repeat.status_code == 200
    assert repeat.json()["id"] == first.json()["id"]
    alert_id = first.json()["id"]
    (alert,) = await _alerts(engine, Alert.id == uuid.UUID(alert_id))
    assert (alert.category, alert.status, alert.audience["districts"]) == (
        "emergency",
        "queued",
        ["장안구"],
    )
    assert await _outbox_count(engine, alert_id, ALERTS_REQUESTED) == 1


@pytest.mark.integration
async def test_cap_exercise_is_stored_but_not_broadcast(
    client: httpx.AsyncClient, operator: dict[str, str], viewer: dict[str, str], engine: AsyncEngine
) -> None:
    document = cap_xml(identifier=f"EX-{uuid.uuid4().hex[:8]}", status="Exercise")
    response = await client.post("/v1/alerts", content=document, headers={**operator, **CAP})
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "not_broadcast"
    alert_id = response.json()["id"]
    shown = (await client.get(f"/v1/alerts/{alert_id}", headers=viewer)).json()
    assert shown["status"] == "not_broadcast"
    assert "Exercise" in shown["status_reason"]
    assert await _outbox_count(engine, alert_id, ALERTS_REQUESTED) == 0


@pytest.mark.integration
async def test_cap_cancel_cancels_the_referenced_alert(
    client: httpx.AsyncClient, operator: dict[str, str], viewer: dict[str, str], engine: AsyncEngine
) -> None:
    identifier = f"KMA-{uuid.uuid4().hex[:8]}"
    sent = "2026-11-25T19:00:00+09:00"
    original = await client.post(
        "/v1/alerts", content=cap_xml(identifier=identifier, sent=sent), headers={**operator, **CAP}
    )
    alert_id = original.json()["id"]
    cancel = cap_xml(
        identifier=f"{identifier}-C",
        msg_type="Cancel",
        references=f"kma@weather.go.kr,{identifier},{sent}",
        sent="2026-11-25T19:30:00+09:00",
    )
    response = await client.post("/v1/alerts", content=cancel, headers={**operator, **CAP})
    assert response.status_code == 200, response.text
    assert response.json()["id"] == alert_id
    assert response.json()["status"] == "cancelled"
    shown = (await client.get(f"/v1/alerts/{alert_id}", headers=viewer)).json()
    assert shown["status"] == "cancelled"
    assert await _outbox_count(engine, alert_id, ALERTS_CONTROL) == 1


@pytest.mark.integration
async def test_cap_cancel_of_an_unknown_alert_is_404(
    client: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    cancel = cap_xml(
        identifier=f"C-{uuid.uuid4().hex[:8]}",
        msg_type="Cancel",
        references="kma@weather.go.kr,NOPE,2026-11-25T19:00:00+09:00",
    )
    response = await client.post("/v1/alerts", content=cancel, headers={**operator, **CAP})
    assert response.status_code == 404
    assert "NOPE" in response.json()["detail"]


@pytest.mark.integration
@pytest.mark.parametrize("document", [BOMB, EXTERNAL, MALFORMED, EUC_KR])
async def test_unsafe_xml_is_a_400_and_changes_nothing(
    client: httpx.AsyncClient, operator: dict[str, str], engine: AsyncEngine, document: bytes
) -> None:
    before = len(await _alerts(engine))
    response = await client.post("/v1/alerts", content=document, headers={**operator, **CAP})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert len(await _alerts(engine)) == before


@pytest.mark.integration
async def test_invalid_cap_is_a_422_naming_the_element(
    client: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    document = cap_xml(area="<area><areaDesc>Atlantis</areaDesc></area>")
    response = await client.post("/v1/alerts", content=document, headers={**operator, **CAP})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "info.area.areaDesc"
    assert "Atlantis" in response.json()["detail"]


@pytest.mark.integration
async def test_concurrent_identical_cap_alerts_are_one_alert(
    client: httpx.AsyncClient, operator: dict[str, str], engine: AsyncEngine
) -> None:
    identifier = f"KMA-{uuid.uuid4().hex[:8]}"
    document = cap_xml(identifier=identifier)
    responses = await asyncio.gather(
        *(
            client.post("/v1/alerts", content=document, headers={**operator, **CAP})
            for _ in range(6)
        )
    )
    assert sorted(r.status_code for r in responses) == [200] * 5 + [202]
    assert len({r.json()["id"] for r in responses}) == 1
    assert len(await _alerts(engine, Alert.cap_identifier == identifier)) == 1
