"""Who got an alert: each recipient's outcome, from the batches' own record.

A settled batch holds who its request went to (`sent_ids`) and the dealer's code for each
(`result_codes`), packed (`common.packing`), written by the settlement that marked it
`done`; a failure also has its row in `delivery_failures` with the dealer's message. So the
answer is exact and durable, whatever the subscribers table says later:

- `delivered` (and when): the last batch that carried the recipient has code 1000;
- `failed` (the dealer's code and message): a `delivery_failures` row;
- `pending`: a batch that will carry them is not settled yet (sending, or held for a retry),
  or the alert is still being planned or sent and no batch has reached them yet;
- `not_sent`: the alert ended before any batch carried them; why: they opted out (or left
  the audience) before their batch, they joined after the alert was planned, the alert was
  cancelled, or it expired or failed.

A recipient whose district and tags never put them in the alert's audience has no outcome:
the look-up answers `None` (a 404 at the API).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from common.messages import DELIVERED_CODES, Audience
from common.models import Alert, Subscriber

Outcome = Literal["delivered", "failed", "pending", "not_sent"]
Listed = Literal["delivered", "failed"]
ENDED = frozenset({"completed", "cancelled", "failed", "expired", "rejected", "not_broadcast"})


@dataclass(frozen=True)
class RecipientOutcome:
    """One recipient's fate in one alert."""

    recipient_no: str
    subscriber_id: int
    outcome: Outcome
    code: int | None = None
    reason: str | None = None
    at: datetime | None = None
    batch_id: str | None = None
    channel: str | None = None  # kakao | sms: the channel of the batch that decided it


# the batches that carried (or will carry) one subscriber, oldest first: range batches by
# their range, follow-ups by their list
_CARRIERS = text(
    """
    SELECT id, seq, status, settled_at, channel,
           allim_codes(result_codes, allim_id_count(sent_ids)) AS result_codes,
           array_position(allim_ids(sent_ids), :sid) AS at
    FROM batches
    WHERE alert_id = :alert AND first_id <= :sid AND last_id >= :sid
      AND (subscriber_ids IS NULL OR :sid = ANY(subscriber_ids))
    ORDER BY created_at, seq
    """
)
_FAILURE = text(
    "SELECT f.batch_id, f.result_code, f.reason, f.created_at, b.channel"
    " FROM delivery_failures f JOIN batches b ON b.id = f.batch_id"
    " WHERE f.alert_id = :alert AND f.subscriber_id = :sid"
)


async def _member(session: AsyncSession, alert: Alert, subscriber: Subscriber) -> bool:
    """Whether the subscriber is in the alert's audience: its frozen list (a follow-up's),
    or its districts and tags."""
    audience = Audience.model_validate(alert.audience)
    if audience.recipients_of is None:
        return in_audience(audience, subscriber)
    found = await session.execute(_FROZEN, {"alert": audience.recipients_of, "sid": subscriber.id})
    return found.first() is not None


_FROZEN = text("SELECT 1 FROM alert_recipients WHERE alert_id = :alert AND subscriber_id = :sid")


def in_audience(audience: Audience, subscriber: Subscriber) -> bool:
    """Whether the subscriber's district and tags put them in `audience`."""
    if audience.all:
        return True
    if audience.districts and subscriber.district not in audience.districts:
        return False
    return not audience.tags or bool(set(audience.tags) & set(subscriber.tags))


async def look_up(
    session: AsyncSession, alert: Alert, subscriber: Subscriber
) -> RecipientOutcome | None:
    """The subscriber's outcome in the alert; None when they were never in its audience."""
    sid = subscriber.id
    params = {"alert": alert.id, "sid": sid}
    failure = (await session.execute(_FAILURE, params)).one_or_none()
    if failure is not None:
        return RecipientOutcome(
            subscriber.recipient_no,
            sid,
            "failed",
            failure.result_code,
            failure.reason,
            failure.created_at,
            failure.batch_id,
            failure.channel,
        )
    carriers = (await session.execute(_CARRIERS, params)).all()
    for batch in reversed(carriers):
        if batch.status != "done":
            return RecipientOutcome(subscriber.recipient_no, sid, "pending", batch_id=batch.id)
        if batch.at is None:
            continue  # its range held them, but they were not in the audience then
        code = batch.result_codes[batch.at - 1]
        if code in DELIVERED_CODES:
            return RecipientOutcome(
                subscriber.recipient_no,
                sid,
                "delivered",
                code,
                at=batch.settled_at,
                batch_id=batch.id,
                channel=batch.channel,
            )
        # a temporary answer: a follow-up batch carries them again (or is about to)
        return RecipientOutcome(subscriber.recipient_no, sid, "pending", code, batch_id=batch.id)
    if not carriers and not await _member(session, alert, subscriber):
        return None
    return _not_reached(alert, subscriber, bool(carriers))


def _not_reached(alert: Alert, subscriber: Subscriber, in_range: bool) -> RecipientOutcome:
    """The outcome of someone in the audience whom no batch carried."""
    number, sid = subscriber.recipient_no, subscriber.id
    if in_range:
        # a batch over their place was sent without them: that is final
        why = "opted out or left the audience before their batch was sent"
        return RecipientOutcome(number, sid, "not_sent", reason=why)
    if alert.status not in ENDED:
        return RecipientOutcome(number, sid, "pending")
    if subscriber.status == "opted_out":
        why = "opted out or left the audience before their batch was sent"
    elif alert.status == "cancelled":
        why = "the alert was cancelled before their batch"
    elif alert.status in ("failed", "expired"):
        why = f"the alert {alert.status} before their batch: {alert.status_reason}"
    elif alert.status in ("rejected", "not_broadcast"):
        why = f"the alert was never broadcast ({alert.status})"
    elif alert.started_at is not None and subscriber.created_at > alert.started_at:
        why = "joined after the alert was planned"
    else:
        why = "not in the audience when the alert was planned"
    return RecipientOutcome(number, sid, "not_sent", reason=why)


# delivered recipients, by subscriber id from `after`: unnested from the settled batches
_DELIVERED = """
    SELECT t.sid AS subscriber_id, s.recipient_no, t.code, NULL::text AS reason,
           b.settled_at AS at, b.id AS batch_id, b.channel
    FROM batches b
    CROSS JOIN LATERAL allim_sent(b.sent_ids, b.result_codes) AS t(sid, code)
    JOIN subscribers s ON s.id = t.sid
    WHERE b.alert_id = :alert AND b.status = 'done' AND b.last_id > :after
      AND t.code IN (1000, 3005) AND t.sid > :after
    ORDER BY t.sid
"""
_FAILED = """
    SELECT f.subscriber_id, s.recipient_no, f.result_code AS code, f.reason,
           f.created_at AS at, f.batch_id, b.channel
    FROM delivery_failures f JOIN subscribers s ON s.id = f.subscriber_id
    JOIN batches b ON b.id = f.batch_id
    WHERE f.alert_id = :alert AND f.subscriber_id > :after
      AND (CAST(:codes AS int[]) IS NULL OR f.result_code = ANY(CAST(:codes AS int[])))
    ORDER BY f.subscriber_id
"""


def _listing(outcome: Listed) -> str:
    return _DELIVERED if outcome == "delivered" else _FAILED


def _row(outcome: Listed, row: Any) -> RecipientOutcome:
    return RecipientOutcome(
        row.recipient_no,
        row.subscriber_id,
        outcome,
        row.code,
        row.reason,
        row.at,
        row.batch_id,
        row.channel,
    )


async def page(
    session: AsyncSession,
    alert_id: uuid.UUID,
    outcome: Listed,
    codes: Sequence[int] | None,
    after: int,
    limit: int,
) -> tuple[list[RecipientOutcome], int | None]:
    """Up to `limit` recipients with `outcome` after subscriber `after`, and the id to go
    on from (None at the end)."""
    query = text(_listing(outcome) + " LIMIT :limit")
    params = {"alert": alert_id, "after": after, "codes": list(codes) if codes else None}
    rows = (await session.execute(query, params | {"limit": limit + 1})).all()
    found = [_row(outcome, r) for r in rows[:limit]]
    return found, found[-1].subscriber_id if len(rows) > limit else None


async def stream(
    session: AsyncSession, alert_id: uuid.UUID, outcome: Listed, codes: Sequence[int] | None
) -> AsyncIterator[RecipientOutcome]:
    """Every recipient with `outcome`, by subscriber id, read as a server-side cursor."""
    params = {"alert": alert_id, "after": 0, "codes": list(codes) if codes else None}
    result = await session.stream(
        text(_listing(outcome)), params, execution_options={"yield_per": 5_000}
    )
    async for row in result:
        yield _row(outcome, row)
