"""Resends and corrections at the gateway, against the real app and PostgreSQL: the linked
alert, its frozen audience, its outbox record and audit row, idempotency, and the
refusals that create nothing. The broadcaster sends to a frozen audience in
tests/broadcaster/test_pipe.py."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.gateway.apps import approving, running
from tests.gateway.scenes import Scene, build_scene
from tests.serving import served

from cli.main import main
from common import packing
from common.db import session_factory
from common.models import Alert, AlertRecipient, AuditEntry, OutboxEntry
from common.topics import ALERTS_REQUESTED
from gateway.config import GatewaySettings

pytestmark = pytest.mark.integration


@pytest.fixture
async def scene(engine: AsyncEngine) -> Scene:
    """See `build_scene`: a sending alert with someone in each outcome."""
    return await build_scene(engine)


async def _end(engine: AsyncEngine, scene: Scene) -> None:
    # the broadcaster's last transition
    async with session_factory(engine)() as session, session.begin():
        await session.execute(
            text("UPDATE alerts SET status = 'completed' WHERE id = :id"), {"id": scene.alert_id}
        )


async def _frozen(engine: AsyncEngine, alert_id: str) -> set[int]:
    async with session_factory(engine)() as session:
        rows = await session.scalars(
            select(AlertRecipient.subscriber_id).where(
                AlertRecipient.alert_id == uuid.UUID(alert_id)
            )
        )
        return set(rows)


async def _counts(engine: AsyncEngine) -> tuple[int, int, int, int]:
    """(alerts, frozen recipients, outbox records, audit rows)."""
    async with session_factory(engine)() as session:
        counts = [
            int(await session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Alert, AlertRecipient, OutboxEntry, AuditEntry)
        ]
    return counts[0], counts[1], counts[2], counts[3]


async def test_a_resend_of_failures_is_a_linked_alert_to_exactly_them(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    viewer: dict[str, str],
    engine: AsyncEngine,
    scene: Scene,
) -> None:
    path = f"/v1/alerts/{scene.alert_id}/resend"
    before = await _counts(engine)
    # 3018 (inactive) is a code no second attempt changes: by default there is nothing to do
    nothing = await client.post(path, headers=operator)
    assert nothing.status_code == 422
    assert "Nothing to resend" in nothing.json()["detail"]
    # a code as text is not the integer the document asks for
    loose = await client.post(path, json={"codes": ["3018"]}, headers=operator)
    assert loose.status_code == 422, loose.text
    assert await _counts(engine) == before

    made = await client.post(path, json={"codes": [3018]}, headers=operator)
    assert made.status_code == 202, made.text
    child = made.json()
    assert (child["parent_id"], child["relation"], child["recipients"]) == (
        str(scene.alert_id),
        "resend",
        1,
    )
    assert await _frozen(engine, child["id"]) == {scene.ids["failed"]}
    shown = (await client.get(f"/v1/alerts/{child['id']}", headers=viewer)).json()
    assert shown["audience"]["recipients_of"] == child["id"]
    assert (shown["status"], shown["parent_id"]) == ("queued", str(scene.alert_id))
    children = await client.get(
        "/v1/alerts", params={"parent_id": str(scene.alert_id)}, headers=viewer
    )
    assert [a["id"] for a in children.json()["items"]] == [child["id"]]
    async with session_factory(engine)() as session:
        records = await session.scalar(
            select(func.count()).where(
                OutboxEntry.key == child["id"], OutboxEntry.topic == ALERTS_REQUESTED
            )
        )
        audit = await session.scalar(
            select(AuditEntry).where(
                AuditEntry.alert_id == scene.alert_id, AuditEntry.action == "alert.resend"
            )
        )
    assert records == 1
    assert audit is not None
    assert audit.detail["follow_up_id"] == child["id"]


async def test_a_resend_is_idempotent_by_key(
    client: httpx.AsyncClient, operator: dict[str, str], engine: AsyncEngine, scene: Scene
) -> None:
    path = f"/v1/alerts/{scene.alert_id}/resend"
    headers = operator | {"Idempotency-Key": f"resend-{uuid.uuid4()}"}
    first = await client.post(path, json={"codes": [3018]}, headers=headers)
    before = await _counts(engine)
    again = await client.post(path, json={"codes": [3018]}, headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
    other = await client.post(path, json={"codes": [3019]}, headers=headers)
    assert other.status_code == 409
    assert await _counts(engine) == before


async def test_not_sent_needs_the_end_and_takes_who_no_batch_carried(
    client: httpx.AsyncClient, operator: dict[str, str], engine: AsyncEngine, scene: Scene
) -> None:
    path = f"/v1/alerts/{scene.alert_id}/resend"
    early = await client.post(path, json={"outcomes": ["not_sent"]}, headers=operator)
    assert early.status_code == 409
    assert early.json()["alert_status"] == "sending"
    await _end(engine, scene)
    made = await client.post(
        path, json={"outcomes": ["not_sent", "failed"], "codes": [3018]}, headers=operator
    )
    assert made.status_code == 202, made.text
    # `left` opted out; `pending`'s batch never settled; `late` joined later
    assert await _frozen(engine, made.json()["id"]) == {
        scene.ids["failed"],
        scene.ids["pending"],
        scene.ids["late"],
    }


async def test_a_correction_goes_to_those_reached_once_it_has_ended(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    viewer: dict[str, str],
    engine: AsyncEngine,
    scene: Scene,
) -> None:
    path = f"/v1/alerts/{scene.alert_id}/followup"
    body = {"kind": "correction", "title": "대피소 주소 정정", "body": "대피소는 시청입니다."}
    before = await _counts(engine)
    early = await client.post(path, json=body, headers=operator)
    assert early.status_code == 409
    assert "once it has ended" in early.json()["detail"]
    assert await _counts(engine) == before

    await _end(engine, scene)
    made = await client.post(path, json=body, headers=operator)
    assert made.status_code == 202, made.text
    child = (await client.get(f"/v1/alerts/{made.json()['id']}", headers=viewer)).json()
    assert (child["title"], child["relation"]) == ("[정정] 대피소 주소 정정", "correction")
    assert child["body"] == "대피소는 시청입니다."
    assert await _frozen(engine, child["id"]) == {scene.ids["delivered"], scene.ids["retried"]}

    unmarked = await client.post(
        path, json=body | {"mark": False, "kind": "update"}, headers=operator
    )
    assert unmarked.status_code == 202
    shown = (await client.get(f"/v1/alerts/{unmarked.json()['id']}", headers=viewer)).json()
    assert shown["title"] == "대피소 주소 정정"


async def test_readers_and_bad_follow_ups(
    client: httpx.AsyncClient, operator: dict[str, str], engine: AsyncEngine, scene: Scene
) -> None:
    await _end(engine, scene)
    path = f"/v1/alerts/{scene.alert_id}/followup"
    body = {
        "kind": "update",
        "title": "추가 안내",
        "body": "내일도 운행하지 않습니다.",
        "audience": "readers",
    }
    before = await _counts(engine)
    nobody = await client.post(path, json=body, headers=operator)
    assert nobody.status_code == 422
    assert "has no readers" in nobody.json()["detail"]
    for bad in (
        body | {"kind": "resend"},
        body | {"title": "가" * 50},  # 50 fits, but not with the mark
        body | {"audience": "everyone"},
        body | {"title": "\u200b"},
        {"kind": "correction", "title": "t"},
    ):
        refused = await client.post(path, json=bad, headers=operator)
        assert refused.status_code == 422, (bad, refused.text)
    assert (
        await client.post(f"/v1/alerts/{uuid.uuid4()}/followup", json=body, headers=operator)
    ).status_code == 404
    assert await _counts(engine) == before

    async with session_factory(engine)() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO token_first_readers (alert_id, subscriber_id, reader_id)"
                " VALUES (:alert, :sid, 'reader-1')"
            ),
            {"alert": scene.alert_id, "sid": scene.ids["delivered"]},
        )
    made = await client.post(path, json=body, headers=operator)
    assert made.status_code == 202, made.text
    assert made.json()["recipients"] == 1


async def test_a_follow_up_waits_for_approval_like_any_alert(
    gateway_settings: GatewaySettings,
    api_keys: dict[str, str],
    engine: AsyncEngine,
    scene: Scene,
) -> None:
    async with running(approving(gateway_settings)) as approval_client:
        made = await approval_client.post(
            f"/v1/alerts/{scene.alert_id}/resend",
            json={"codes": [3018]},
            headers={"X-API-Key": api_keys["operator"]},
        )
        assert made.status_code == 202, made.text
        assert made.json()["status"] == "pending_approval"
        approved = await approval_client.post(
            f"/v1/alerts/{made.json()['id']}/approve",
            headers={"X-API-Key": api_keys["approver"]},
        )
        assert approved.json()["status"] == "queued"


async def test_allim_resend_and_followup(
    gateway_app: FastAPI,
    operator: dict[str, str],
    engine: AsyncEngine,
    scene: Scene,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with served(gateway_app) as url:
        flags = ("--gateway", url, "--api-key", operator["X-API-Key"])
        alert = str(scene.alert_id)
        assert await asyncio.to_thread(main, ["resend", alert, *flags]) == 1
        assert "Nothing to resend" in capsys.readouterr().err
        key = ("--idempotency-key", f"cli-{uuid.uuid4()}")
        assert await asyncio.to_thread(main, ["resend", alert, "--code", "3018", *key, *flags]) == 0
        first = capsys.readouterr().out
        assert first.endswith("queued resend to 1 recipients\n")
        assert await asyncio.to_thread(main, ["resend", alert, "--code", "3018", *key, *flags]) == 0
        assert capsys.readouterr().out == first  # the same follow-up, not a second one
        await _end(engine, scene)
        correction = ["followup", alert, "--title", "정정", "--body", "시청입니다.", *flags]
        assert await asyncio.to_thread(main, correction) == 0
        assert "correction to 2 recipients" in capsys.readouterr().out


CAP_FILE = Path(__file__).with_name("cap_sample.xml")


def _cap(identifier: str, msg_type: str = "Alert", references: str = "") -> bytes:
    document = CAP_FILE.read_text(encoding="utf-8").replace("KMA-SAMPLE", identifier)
    document = document.replace("<msgType>Alert</msgType>", f"<msgType>{msg_type}</msgType>")
    if references:
        document = document.replace(
            "<scope>Public</scope>", f"<scope>Public</scope><references>{references}</references>"
        )
    return document.replace("호우주의보 발효", "호우경보로 격상").encode()


async def test_a_cap_update_of_a_known_alert_follows_it(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    viewer: dict[str, str],
    engine: AsyncEngine,
) -> None:
    headers = operator | {"Content-Type": "application/cap+xml"}
    first = f"KMA-{uuid.uuid4().hex[:8]}"
    parent = (await client.post("/v1/alerts", content=_cap(first), headers=headers)).json()["id"]
    reference = f"kma@weather.go.kr,{first},2026-11-25T19:00:00+09:00"

    # while the parent is under way, the Update is an alert of its own, linked to it
    running = await client.post(
        "/v1/alerts", content=_cap(f"{first}-u1", "Update", reference), headers=headers
    )
    assert running.status_code == 202, running.text
    linked = (await client.get(f"/v1/alerts/{running.json()['id']}", headers=viewer)).json()
    assert (linked["parent_id"], linked["relation"]) == (parent, "update")
    assert linked["audience"]["recipients_of"] is None  # its own areas, not a frozen set

    # once it has ended, the Update goes to those it reached
    unique = uuid.uuid4().int % 10**6
    async with session_factory(engine)() as session, session.begin():
        sid = await session.scalar(
            text("SELECT id FROM subscribers WHERE status = 'active' ORDER BY id LIMIT 1")
        )
        await session.execute(
            text(
                "INSERT INTO batches (id, alert_id, shard_no, seq, first_id, last_id, size,"
                " status, sent_ids, result_codes) VALUES (:id, :alert, 0, 0, :sid, :sid, 1,"
                " 'done', :sent, :codes)"
            ),
            {
                "id": f"{parent}:0:{unique}",
                "alert": uuid.UUID(parent),
                "sid": sid,
                "sent": packing.ids([sid]),
                "codes": packing.codes([1000]),
            },
        )
        await session.execute(
            text("UPDATE alerts SET status = 'completed' WHERE id = :id"), {"id": uuid.UUID(parent)}
        )
    update = _cap(f"{first}-u2", "Update", reference)
    made = await client.post("/v1/alerts", content=update, headers=headers)
    assert made.status_code == 202, made.text
    child = (await client.get(f"/v1/alerts/{made.json()['id']}", headers=viewer)).json()
    assert (child["parent_id"], child["relation"]) == (parent, "update")
    assert child["title"] == "[추가 안내] 호우경보로 격상"
    assert await _frozen(engine, child["id"]) == {sid}
    # the same Update relayed again is the same follow-up
    again = await client.post("/v1/alerts", content=update, headers=headers)
    assert (again.status_code, again.json()["id"]) == (200, child["id"])
