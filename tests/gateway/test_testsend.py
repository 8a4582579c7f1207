"""Test sends against the real gateway and PostgreSQL: the test alert, its one outbox record
and audit row, what is refused (and leaves nothing behind), and the parent left untouched.
The broadcaster's side (a test send's events name its parent) is in
tests/broadcaster/test_pipe.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.gateway.bodies import AlertJson

from common.db import session_factory
from common.models import Alert, AuditEntry, OutboxEntry, Subscriber
from common.topics import ALERTS_REQUESTED
from gateway.config import GatewaySettings
from gateway.main import create_app

pytestmark = pytest.mark.integration

TAG = f"tester-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
async def testers(engine: AsyncEngine) -> AsyncIterator[list[str]]:
    """Two active subscribers with this module's test tag; opted out again at the end, so
    no other test's audience counts them."""
    numbers = [f"0177{uuid.uuid4().int % 10**7:07d}" for _ in range(2)]
    async with session_factory(engine)() as session, session.begin():
        session.add_all(Subscriber(recipient_no=n, district="장안구", tags=[TAG]) for n in numbers)
    yield numbers
    async with session_factory(engine)() as session, session.begin():
        await session.execute(
            update(Subscriber)
            .where(Subscriber.recipient_no.in_(numbers))
            .values(status="opted_out")
        )


@pytest.fixture(scope="module")
async def client(
    gateway_settings: GatewaySettings, testers: list[str], seeded_subscribers: list[str]
) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway that needs approval and tests with this module's tag."""
    settings = gateway_settings.model_copy(
        update={
            "gateway_approval_required": True,
            "gateway_test_tag": TAG,
            "gateway_test_max_recipients": 2,
        }
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(app.state.gateway.kafka.ready.wait(), 60)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t.test") as http:
            yield http


async def _counts(engine: AsyncEngine) -> tuple[int, int, int]:
    """(alerts, outbox records, audit rows)."""
    async with session_factory(engine)() as session:
        counts = [
            int(await session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Alert, OutboxEntry, AuditEntry)
        ]
    return counts[0], counts[1], counts[2]


async def _pending(client: httpx.AsyncClient, operator: dict[str, str], body: dict) -> str:
    created = await client.post("/v1/alerts", json=body, headers=operator)
    assert created.json()["status"] == "pending_approval", created.text
    return str(created.json()["id"])


async def test_a_test_send_reaches_the_testers_while_the_alert_waits(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    viewer: dict[str, str],
    engine: AsyncEngine,
    alert_json: AlertJson,
) -> None:
    parent = await _pending(client, operator, alert_json())
    sent = await client.post(f"/v1/alerts/{parent}/test", headers=operator)
    assert sent.status_code == 202, sent.text
    answer = sent.json()
    assert (answer["test_of"], answer["recipients"], answer["status"]) == (parent, 2, "queued")
    child = answer["id"]

    shown = (await client.get(f"/v1/alerts/{child}", headers=viewer)).json()
    assert (shown["test_of"], shown["approval"], shown["author"]) == (
        parent,
        "test",
        "test operator",
    )
    assert shown["audience"]["tags"] == [TAG]
    assert (shown["title"], shown["body"]) == (alert_json()["title"], alert_json()["body"])
    async with session_factory(engine)() as session:
        records = await session.scalar(
            select(func.count()).where(
                OutboxEntry.key == child, OutboxEntry.topic == ALERTS_REQUESTED
            )
        )
        audit = await session.scalar(
            select(AuditEntry).where(
                AuditEntry.alert_id == uuid.UUID(parent), AuditEntry.action == "alert.test"
            )
        )
    assert records == 1
    assert audit is not None
    assert audit.detail == {"test_alert_id": child, "recipients": 2, "tag": TAG}
    # the parent still waits, and its counts are its own
    parent_now = (await client.get(f"/v1/alerts/{parent}", headers=viewer)).json()
    assert (parent_now["status"], parent_now["targeted"], parent_now["delivered"]) == (
        "pending_approval",
        0,
        0,
    )


async def test_the_list_leaves_test_sends_out_unless_asked(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    viewer: dict[str, str],
    alert_json: AlertJson,
) -> None:
    parent = await _pending(client, operator, alert_json())
    child = (await client.post(f"/v1/alerts/{parent}/test", headers=operator)).json()["id"]
    listed = (await client.get("/v1/alerts", params={"limit": 50}, headers=viewer)).json()
    ids = [a["id"] for a in listed["items"]]
    assert parent in ids
    assert child not in ids
    tests = (await client.get("/v1/alerts", params={"test_of": parent}, headers=viewer)).json()
    assert [a["id"] for a in tests["items"]] == [child]


async def test_refusals_leave_nothing_behind(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    viewer: dict[str, str],
    approver: dict[str, str],
    engine: AsyncEngine,
    alert_json: AlertJson,
) -> None:
    rejected = await _pending(client, operator, alert_json())
    await client.post(f"/v1/alerts/{rejected}/reject", json={"reason": "no"}, headers=approver)
    parent = await _pending(client, operator, alert_json())
    child = (await client.post(f"/v1/alerts/{parent}/test", headers=operator)).json()["id"]
    before = await _counts(engine)

    for alert_id, headers, status in (
        (rejected, operator, 409),
        (child, operator, 409),
        (str(uuid.uuid4()), operator, 404),
        (parent, viewer, 403),
        (parent, {}, 401),
    ):
        refused = await client.post(f"/v1/alerts/{alert_id}/test", headers=headers)
        assert refused.status_code == status, (alert_id, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    assert await _counts(engine) == before


async def test_no_testers_or_too_many_is_a_clear_422(
    client: httpx.AsyncClient,
    operator: dict[str, str],
    testers: list[str],
    engine: AsyncEngine,
    alert_json: AlertJson,
) -> None:
    parent = await _pending(client, operator, alert_json())
    extra = f"0178{uuid.uuid4().int % 10**7:07d}"
    async with session_factory(engine)() as session, session.begin():
        session.add(Subscriber(recipient_no=extra, district="장안구", tags=[TAG]))
    before = await _counts(engine)
    too_many = await client.post(f"/v1/alerts/{parent}/test", headers=operator)
    assert too_many.status_code == 422
    assert "3 subscribers are tagged" in too_many.json()["detail"]

    async with session_factory(engine)() as session, session.begin():
        await session.execute(
            update(Subscriber)
            .where(Subscriber.recipient_no.in_([*testers, extra]))
            .values(status="opted_out")
        )
    nobody = await client.post(f"/v1/alerts/{parent}/test", headers=operator)
    assert nobody.status_code == 422
    assert f"tagged '{TAG}'" in nobody.json()["detail"]
    assert await _counts(engine) == before
    async with session_factory(engine)() as session, session.begin():
        await session.execute(
            update(Subscriber).where(Subscriber.recipient_no.in_(testers)).values(status="active")
        )
