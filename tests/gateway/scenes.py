"""A scene of the recipients' tests: an alert to a district of its own, with its people in
each outcome and its batches written as the broadcaster's settlement writes them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from common import packing
from common.db import session_factory
from common.models import Subscriber

NOW = datetime.now(UTC)


@dataclass
class Scene:
    """An alert to a district of its own, and its people by role."""

    alert_id: uuid.UUID
    numbers: dict[str, str]
    ids: dict[str, int]

    def path(self, who: str) -> str:
        return f"/v1/alerts/{self.alert_id}/recipients/{self.numbers[who]}"


ROLES = ("delivered", "failed", "retried", "left", "pending", "late")


async def _batch(session: AsyncSession, alert_id: uuid.UUID, **row: object) -> None:
    await session.execute(
        text(
            "INSERT INTO batches (id, alert_id, shard_no, seq, first_id, last_id, size, status,"
            " subscriber_ids, sent_ids, result_codes, settled_at)"
            " VALUES (:id, :alert, 0, :seq, :first, :last, :size, :status, :list,"
            " CAST(:sent AS bytea), CAST(:codes AS bytea), :settled)"
        ),
        {"alert": alert_id, "list": None, "settled": None}
        | row
        # packed as the settlement packs them (common.packing)
        | {
            "sent": packing.ids(row["sent"]) if row.get("sent") is not None else None,  # type: ignore[arg-type]
            "codes": packing.codes(row["codes"]) if row.get("codes") is not None else None,  # type: ignore[arg-type]
        },
    )


async def build_scene(engine: AsyncEngine) -> Scene:
    """A sending alert: `delivered` (1000), `failed` (3018), `retried` (5000, then 1000 in a
    follow-up batch), `left` (opted out before the first batch), `pending` (in a batch not
    settled), `late` (joined after planning) and `elsewhere` (never in the audience)."""
    district = f"구-{uuid.uuid4().hex[:8]}"
    numbers = {who: f"010{uuid.uuid4().int % 10**8:08d}" for who in (*ROLES, "elsewhere")}
    alert_id = uuid.uuid4()
    async with session_factory(engine)() as session, session.begin():
        people = {
            who: Subscriber(
                recipient_no=numbers[who],
                district="elsewhere" if who == "elsewhere" else district,
                status="opted_out" if who == "left" else "active",
                created_at=NOW + timedelta(minutes=5) if who == "late" else NOW,
            )
            for who in (*ROLES, "elsewhere")
        }
        for who in (*ROLES, "elsewhere"):  # ids in this order
            session.add(people[who])
            await session.flush()
        ids = {who: people[who].id for who in people}
        await session.execute(
            text(
                "INSERT INTO alerts (id, title, body, category, audience, status, started_at)"
                " VALUES (:id, 't', 'b', 'public', CAST(:audience AS jsonb), 'sending', :at)"
            ),
            {"id": alert_id, "audience": f'{{"districts": ["{district}"]}}', "at": NOW},
        )
        first = f"{alert_id}:0:0"
        await _batch(
            session,
            alert_id,
            id=first,
            seq=0,
            first=ids["delivered"],
            last=ids["left"],
            size=4,
            status="done",
            sent=[ids["delivered"], ids["failed"], ids["retried"]],
            codes=[1000, 3018, 5000],
            settled=NOW,
        )
        await _batch(
            session,
            alert_id,
            id=f"{alert_id}:0:1",
            seq=1,
            first=ids["pending"],
            last=ids["pending"],
            size=1,
            status="sending",
        )
        await _batch(
            session,
            alert_id,
            id=f"{alert_id}:0:2",
            seq=2,
            first=ids["retried"],
            last=ids["retried"],
            size=1,
            status="done",
            list=[ids["retried"]],
            sent=[ids["retried"]],
            codes=[1000],
            settled=NOW + timedelta(seconds=3),
        )
        await session.execute(
            text(
                "INSERT INTO delivery_failures (alert_id, subscriber_id, batch_id, result_code,"
                " reason) VALUES (:alert, :sid, :batch, 3018, 'no such KakaoTalk user')"
            ),
            {"alert": alert_id, "sid": ids["failed"], "batch": first},
        )
    return Scene(alert_id, numbers, ids)
