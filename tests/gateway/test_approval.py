"""Two-person approval against the real gateway and PostgreSQL: who may approve, what a
decision changes (and what a refused one leaves as it was), expiry while waiting, and the
deployment's switches (off, exempt categories, machine feeds)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.gateway.apps import Client, approving, running
from tests.gateway.bodies import AlertJson

from common.db import session_factory
from common.models import Alert, AuditEntry, OutboxEntry, User
from common.topics import ALERTS_CONTROL, ALERTS_REQUESTED
from gateway import approvals
from gateway.auth import create_key, enrol
from gateway.config import GatewaySettings
from gateway.main import create_app

pytestmark = pytest.mark.integration

CAP_FILE = Path(__file__).with_name("cap_sample.xml")


@pytest.fixture(scope="module")
async def client(gateway_settings: GatewaySettings) -> AsyncIterator[Client]:
    """A gateway that needs approval for every person's alert."""
    async with running(approving(gateway_settings)) as http:
        yield http


class People:
    """Fresh users of this module, each with a key: `headers(name)` to act as them."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.keys: dict[str, str] = {}
        self.names: dict[str, str] = {}

    async def add(self, who: str, role: str, *, machine_feed: bool = False) -> None:
        name = f"{who} {uuid.uuid4().hex[:8]}"
        async with session_factory(self._engine)() as session, session.begin():
            _, self.keys[who] = await enrol(session, name, role, machine_feed=machine_feed)
        self.names[who] = name

    async def second_key(self, who: str) -> dict[str, str]:
        """Headers of another key of the same user."""
        async with session_factory(self._engine)() as session, session.begin():
            user = await session.scalar(select(User).where(User.name == self.names[who]))
            assert user is not None
            key = await create_key(session, user, "second key")
        return {"X-API-Key": key}

    def headers(self, who: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[who]}


@pytest.fixture(scope="module")
async def people(engine: AsyncEngine, seeded_subscribers: list[str]) -> People:
    """An author (operator), two approvers, a viewer, an admin and a machine feed (and the
    seeded subscribers their alerts address)."""
    crowd = People(engine)
    for who, role in (
        ("author", "operator"),
        ("approver", "approver"),
        ("other approver", "approver"),
        ("viewer", "viewer"),
        ("admin", "admin"),
    ):
        await crowd.add(who, role)
    await crowd.add("feed", "operator", machine_feed=True)
    return crowd


async def _create(client: Client, people: People, who: str, body: dict[str, Any]) -> str:
    created = await client.post("/v1/alerts", json=body, headers=people.headers(who))
    assert created.status_code == 202, created.text
    return str(created.json()["id"])


async def _state(engine: AsyncEngine, alert_id: str) -> tuple[str, int, int, list[str]]:
    """(status, alerts.requested records, alerts.control records, audit actions)."""
    key = str(uuid.UUID(alert_id))
    async with session_factory(engine)() as session:
        alert = await session.get(Alert, uuid.UUID(alert_id))
        assert alert is not None

        async def records(topic: str) -> int:
            query = select(func.count()).where(OutboxEntry.key == key, OutboxEntry.topic == topic)
            return int(await session.scalar(query) or 0)

        actions = await session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.alert_id == uuid.UUID(alert_id))
            .order_by(AuditEntry.id)
        )
        return (
            alert.status,
            await records(ALERTS_REQUESTED),
            await records(ALERTS_CONTROL),
            list(actions),
        )


async def test_a_persons_alert_waits_and_says_who_wrote_it(
    client: Client, people: People, engine: AsyncEngine, alert_json: AlertJson
) -> None:
    alert_id = await _create(client, people, "author", alert_json())
    shown = (await client.get(f"/v1/alerts/{alert_id}", headers=people.headers("viewer"))).json()
    assert shown["status"] == "pending_approval"
    assert shown["approval"] == "required"
    assert shown["author"] == people.names["author"]
    assert shown["decided_by"] is None
    assert "approver" in shown["status_reason"]
    # nothing reaches the broadcaster while it waits
    assert await _state(engine, alert_id) == ("pending_approval", 0, 0, ["alert.create"])


async def test_an_approver_lets_it_go_with_one_outbox_record(
    client: Client, people: People, engine: AsyncEngine, alert_json: AlertJson
) -> None:
    alert_id = await _create(client, people, "author", alert_json())
    approved = await client.post(
        f"/v1/alerts/{alert_id}/approve", headers=people.headers("approver")
    )
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert (body["status"], body["decided_by"]) == ("queued", people.names["approver"])
    assert body["decided_at"] is not None
    assert await _state(engine, alert_id) == ("queued", 1, 0, ["alert.create", "alert.approve"])


async def test_a_scheduled_alert_is_scheduled_once_approved(
    client: Client, people: People, engine: AsyncEngine, alert_json: AlertJson
) -> None:
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    alert_id = await _create(client, people, "author", alert_json(send_at=later))
    approved = await client.post(
        f"/v1/alerts/{alert_id}/approve", headers=people.headers("approver")
    )
    assert approved.json()["status"] == "scheduled"
    assert (await _state(engine, alert_id))[:2] == ("scheduled", 1)


async def test_the_author_may_not_approve_with_any_of_their_keys(
    client: Client, people: People, engine: AsyncEngine, alert_json: AlertJson
) -> None:
    alert_id = await _create(client, people, "approver", alert_json())
    second = await people.second_key("approver")
    for headers in (people.headers("approver"), second):
        for verb, body in (("approve", None), ("reject", {"reason": "my own"})):
            refused = await client.post(f"/v1/alerts/{alert_id}/{verb}", json=body, headers=headers)
            assert refused.status_code == 403, refused.text
            assert "wrote" in refused.json()["detail"]
    assert await _state(engine, alert_id) == ("pending_approval", 0, 0, ["alert.create"])
    # another approver may
    approved = await client.post(
        f"/v1/alerts/{alert_id}/approve", headers=people.headers("other approver")
    )
    assert approved.status_code == 200


async def test_viewers_operators_and_admins_may_not_approve(
    client: Client, people: People, engine: AsyncEngine, alert_json: AlertJson
) -> None:
    alert_id = await _create(client, people, "author", alert_json())
    for who in ("viewer", "author", "admin"):
        refused = await client.post(f"/v1/alerts/{alert_id}/approve", headers=people.headers(who))
        assert refused.status_code == 403, refused.text
        assert "approver role" in refused.json()["detail"]
    assert (await client.post(f"/v1/alerts/{alert_id}/approve")).status_code == 401
    assert await _state(engine, alert_id) == ("pending_approval", 0, 0, ["alert.create"])


@pytest.mark.parametrize("first", ["approve", "reject", "cancel"])
async def test_a_decided_or_cancelled_alert_cannot_be_approved(
    first: str, client: Client, people: People, engine: AsyncEngine, alert_json: AlertJson
) -> None:
    alert_id = await _create(client, people, "author", alert_json())
    who = "author" if first == "cancel" else "approver"
    body = {"reason": "wrong district"} if first == "reject" else None
    done = await client.post(
        f"/v1/alerts/{alert_id}/{first}", json=body, headers=people.headers(who)
    )
    assert done.status_code == 200, done.text
    before = await _state(engine, alert_id)
    refused = await client.post(
        f"/v1/alerts/{alert_id}/approve", headers=people.headers("other approver")
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["alert_status"] == before[0]
    assert "not waiting for approval" in refused.json()["detail"]
    assert await _state(engine, alert_id) == before


async def test_two_approvals_at_once_broadcast_once(
    client: Client, people: People, engine: AsyncEngine, alert_json: AlertJson
) -> None:
    alert_id = await _create(client, people, "author", alert_json())
    answers = await asyncio.gather(
        *(
            client.post(f"/v1/alerts/{alert_id}/approve", headers=people.headers(who))
            for who in ("approver", "other approver", "approver", "other approver")
        )
    )
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409]
    status, requested, _, actions = await _state(engine, alert_id)
    assert (status, requested, actions.count("alert.approve")) == ("queued", 1, 1)


async def test_a_rejection_needs_a_reason_and_ends_the_alert(
    client: Client, people: People, engine: AsyncEngine, alert_json: AlertJson
) -> None:
    alert_id = await _create(client, people, "author", alert_json())
    path = f"/v1/alerts/{alert_id}/reject"
    headers = people.headers("approver")
    # white space as `str.strip()` sees it (a form feed, an information separator), and NUL,
    # which PostgreSQL cannot store (it was a 500)
    blanks = ("   ", "\f", "\x1c\u3000")
    for body in (
        {},
        {"reason": ""},
        *({"reason": blank} for blank in blanks),
        {"reason": "wrong\x00district"},
        {"reason": "x" * 501},
    ):
        refused = await client.post(path, json=body, headers=headers)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.json()["errors"][0]["field"] == "reason"
    assert await _state(engine, alert_id) == ("pending_approval", 0, 0, ["alert.create"])

    rejected = await client.post(path, json={"reason": "권선구 too"}, headers=headers)
    assert rejected.status_code == 200
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["status_reason"].endswith("권선구 too")
    # a rejected alert is over: it cannot be cancelled either
    cancel = await client.post(f"/v1/alerts/{alert_id}/cancel", headers=people.headers("author"))
    assert cancel.status_code == 409
    assert await _state(engine, alert_id) == ("rejected", 0, 0, ["alert.create", "alert.reject"])


async def test_cancel_while_pending_tells_the_broadcaster_nothing(
    client: Client, people: People, engine: AsyncEngine, alert_json: AlertJson
) -> None:
    alert_id = await _create(client, people, "author", alert_json())
    cancelled = await client.post(f"/v1/alerts/{alert_id}/cancel", headers=people.headers("author"))
    assert cancelled.json()["status"] == "cancelled"
    assert await _state(engine, alert_id) == ("cancelled", 0, 0, ["alert.create", "alert.cancel"])


async def _expire_now(engine: AsyncEngine, alert_id: str) -> None:
    # the clock cannot be moved inside the gateway: the expiry is moved into the past instead
    async with session_factory(engine)() as session, session.begin():
        await session.execute(
            update(Alert)
            .where(Alert.id == uuid.UUID(alert_id))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )


async def test_an_alert_that_expired_while_waiting_is_never_sent(
    client: Client, people: People, engine: AsyncEngine, alert_json: AlertJson
) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    alert_id = await _create(client, people, "author", alert_json(expires_at=later))
    await _expire_now(engine, alert_id)
    refused = await client.post(
        f"/v1/alerts/{alert_id}/approve", headers=people.headers("approver")
    )
    assert refused.status_code == 409
    assert refused.json()["alert_status"] == "expired"
    assert "will not be sent" in refused.json()["detail"]
    assert await _state(engine, alert_id) == ("expired", 0, 0, ["alert.create", "alert.expire"])


async def test_the_sweep_expires_waiting_alerts_and_nothing_else(
    client: Client, people: People, engine: AsyncEngine, alert_json: AlertJson
) -> None:
    soon = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    waiting = await _create(client, people, "author", alert_json(expires_at=soon))
    unbounded = await _create(client, people, "author", alert_json())
    sent = await _create(client, people, "author", alert_json(expires_at=soon))
    await client.post(f"/v1/alerts/{sent}/approve", headers=people.headers("approver"))

    async with session_factory(engine)() as session:
        assert waiting not in map(str, await approvals.expire_due(session, datetime.now(UTC)))
    async with session_factory(engine)() as session:
        expired = await approvals.expire_due(session, datetime.now(UTC) + timedelta(hours=1))
    assert str(uuid.UUID(waiting)) in map(str, expired)
    assert (await _state(engine, waiting))[0] == "expired"
    assert (await _state(engine, unbounded))[0] == "pending_approval"
    assert (await _state(engine, sent))[0] == "queued"


async def test_an_approver_reviews_the_stored_alert(
    client: Client, people: People, alert_json: AlertJson
) -> None:
    alert_id = await _create(client, people, "author", alert_json())
    review = await client.get(f"/v1/alerts/{alert_id}/preview", headers=people.headers("approver"))
    assert review.status_code == 200, review.text
    shown = review.json()
    assert shown["recipients"] >= 1
    assert "장안구" in {d["district"] for d in shown["by_district"]}
    assert shown["estimate"] is not None
    assert shown["message"]["title"] == alert_json()["title"]
    assert shown["message"]["buttons"][-1]["name"] == "자세히 보기"
    missing = await client.get(
        f"/v1/alerts/{uuid.uuid4()}/preview", headers=people.headers("approver")
    )
    assert missing.status_code == 404


async def test_a_cap_alert_from_a_person_waits_too(client: Client, people: People) -> None:
    alert_xml = CAP_FILE.read_bytes().replace(b"KMA-SAMPLE", f"KMA-{uuid.uuid4()}".encode())
    headers = people.headers("author") | {"Content-Type": "application/cap+xml"}
    created = await client.post("/v1/alerts", content=alert_xml, headers=headers)
    assert created.status_code == 202, created.text
    assert created.json()["status"] == "pending_approval"


@pytest.mark.parametrize(
    ("change", "who", "status", "approval"),
    [
        ({"gateway_approval_required": False}, "author", "queued", "off"),
        ({"gateway_approval_exempt_categories": ["emergency"]}, "author", "queued", "exempt"),
        (
            {"gateway_approval_exempt_categories": ["public"]},
            "author",
            "pending_approval",
            "required",
        ),
        ({"gateway_machine_feeds_skip_approval": True}, "feed", "queued", "machine_feed"),
        ({"gateway_machine_feeds_skip_approval": True}, "author", "pending_approval", "required"),
        ({}, "feed", "pending_approval", "required"),
    ],
)
async def test_the_deployment_decides_who_skips_approval(
    change: dict[str, Any],
    who: str,
    status: str,
    approval: str,
    gateway_settings: GatewaySettings,
    people: People,
    engine: AsyncEngine,
    alert_json: AlertJson,
) -> None:
    async with running(approving(gateway_settings, **change)) as switched:
        alert_id = await _create(switched, people, who, alert_json())
        shown = (await switched.get(f"/v1/alerts/{alert_id}", headers=people.headers(who))).json()
    assert (shown["status"], shown["approval"]) == (status, approval)
    async with session_factory(engine)() as session:
        row = await session.scalar(
            select(AuditEntry).where(AuditEntry.alert_id == uuid.UUID(alert_id))
        )
    assert row is not None
    assert row.detail["approval"] == approval
    assert (await _state(engine, alert_id))[1] == (0 if status == "pending_approval" else 1)


def test_the_openapi_document_carries_the_decisions(gateway_settings: GatewaySettings) -> None:
    spec = create_app(gateway_settings).openapi()
    for path, codes in (
        ("/v1/alerts/{alert_id}/approve", {"200", "401", "403", "404", "409", "422"}),
        ("/v1/alerts/{alert_id}/reject", {"200", "401", "403", "404", "409", "422"}),
        ("/v1/alerts/{alert_id}/test", {"202", "401", "403", "404", "409", "422"}),
    ):
        assert codes <= set(spec["paths"][path]["post"]["responses"]), path
    assert "pending_approval" in str(spec["components"]["schemas"]["AlertPublic"])
