"""Follow-ups: an alert sent again to those it failed, or corrected for those it reached.

A follow-up is an alert of its own, linked to its parent (`parent_id`, `relation`), whose
audience is a set of subscribers frozen when it is created (`alert_recipients`, named by
`Audience.recipients_of`): who it goes to never moves after the operator saw the count.
It goes through approval like any alert (`gateway.approvals.needed`), and an
`Idempotency-Key` makes a retried request return the first follow-up.

- A resend (`relation = resend`) goes to the parent's recipients with the chosen outcomes:
  `failed` with the chosen dealer codes (by default every code but those no second attempt
  changes: 3018 inactive, 3019 not a KakaoTalk user, 3020 blocked), and `not_sent`: the
  parent's audience that no batch carried (a cancel or an expiry stopped it first), still
  active now.
- A correction or update (`relation = correction | update`) carries a new title and body to
  everyone the parent reached (`delivered`) or everyone who opened it (`readers`); a
  correction's title starts with `[정정]` unless told otherwise. The parent must have ended.

Errors (all `FollowUpError`, plus `intake.AlertNotFound` and `intake.IdempotencyConflict`):

    FollowUpError
    ├── NotFollowable    the parent has not ended, or cannot be followed (a test, pending)
    └── NobodyToReach    the chosen set is empty: nothing is created
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import CursorResult, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from common.messages import Audience
from common.models import Alert
from gateway import audit, intake

logger = logging.getLogger(__name__)

Relation = Literal["resend", "correction", "update"]
ResendOutcome = Literal["failed", "not_sent"]
FollowUpAudience = Literal["delivered", "readers"]
# codes no second attempt changes: the person does not use KakaoTalk, or blocked it
FINAL_CODES: frozenset[int] = frozenset({3018, 3019, 3020})
ENDED = frozenset({"completed", "cancelled", "failed"})
PREFIXES: dict[str, str] = {"correction": "[정정] ", "update": "[추가 안내] "}


class FollowUpError(Exception):
    """A follow-up that is refused; the message says why."""


class NotFollowable(FollowUpError):
    """The parent cannot be followed up now."""

    def __init__(self, detail: str, status: str) -> None:
        super().__init__(detail)
        self.status = status


class NobodyToReach(FollowUpError):
    """The chosen recipients are nobody."""


@dataclass(frozen=True)
class Draft:
    """What the follow-up says and who it goes to, as the operator asked."""

    relation: Relation
    title: str | None = None  # None: the parent's
    body: str | None = None
    outcomes: tuple[ResendOutcome, ...] = ("failed",)
    codes: tuple[int, ...] | None = None  # failures with these codes; None: all but final
    audience: FollowUpAudience = "delivered"

    def digest(self) -> str:
        """What makes two requests the same request (for the Idempotency-Key)."""
        return hashlib.sha256(repr(self).encode()).hexdigest()


@dataclass(frozen=True)
class Created:
    """A follow-up: the alert, how many it reaches, and whether this call created it."""

    alert: Alert
    recipients: int
    created: bool


# the parent's failures with the chosen codes (NULL: all but the final ones)
_FAILED = """
SELECT f.subscriber_id FROM delivery_failures f
WHERE f.alert_id = :parent
  AND (CAST(:codes AS int[]) IS NULL AND NOT f.result_code = ANY(CAST(:final AS int[]))
       OR f.result_code = ANY(CAST(:codes AS int[])))
"""
# the parent's recipients whose last answer was 1000
_DELIVERED = """
SELECT t.sid FROM batches b
CROSS JOIN LATERAL allim_sent(b.sent_ids, b.result_codes) AS t(sid, code)
WHERE b.alert_id = :parent AND b.status = 'done' AND t.code IN (1000, 3005)
"""
_READERS = "SELECT subscriber_id FROM token_first_readers WHERE alert_id = :parent"


def _not_sent(audience: Audience) -> tuple[str, dict[str, object]]:
    """The parent's audience that no settled batch carried, still active now."""
    if audience.recipients_of is not None:
        members = "SELECT subscriber_id AS sid FROM alert_recipients WHERE alert_id = :members"
        params: dict[str, object] = {"members": audience.recipients_of}
    else:
        members = (
            "SELECT id AS sid FROM subscribers WHERE status = 'active'"
            " AND (CAST(:all AS boolean) OR ("
            " (cardinality(CAST(:districts AS text[])) = 0"
            "  OR district = ANY(CAST(:districts AS text[])))"
            " AND (cardinality(CAST(:tags AS text[])) = 0"
            "  OR tags && CAST(:tags AS varchar(64)[]))))"
        )
        params = {"all": audience.all, "districts": audience.districts, "tags": audience.tags}
    sql = (
        f"SELECT m.sid FROM ({members}) m WHERE NOT EXISTS ("
        " SELECT 1 FROM batches b WHERE b.alert_id = :parent AND b.status = 'done'"
        " AND b.first_id <= m.sid AND b.last_id >= m.sid AND m.sid = ANY(allim_ids(b.sent_ids)))"
    )
    return sql, params


def _chosen(draft: Draft, parent: Alert) -> tuple[str, dict[str, object]]:
    """The statement that selects the follow-up's recipients, and its parameters."""
    params: dict[str, object] = {"parent": parent.id}
    if draft.relation != "resend":
        return (_DELIVERED if draft.audience == "delivered" else _READERS), params
    parts: list[str] = []
    if "failed" in draft.outcomes:
        parts.append(_FAILED)
        params |= {"codes": list(draft.codes) if draft.codes else None, "final": list(FINAL_CODES)}
    if "not_sent" in draft.outcomes:
        sql, extra = _not_sent(Audience.model_validate(parent.audience))
        parts.append(sql)
        params |= extra
    return " UNION ".join(parts), params


def _check_parent(parent: Alert, draft: Draft) -> None:
    if parent.test_of is not None or parent.status in ("pending_approval", "rejected"):
        raise NotFollowable(
            f"Alert {parent.id} is {'a test send' if parent.test_of else parent.status}: it "
            "reached nobody to follow up.",
            parent.status,
        )
    if draft.relation != "resend" or "not_sent" in draft.outcomes:
        if parent.status not in ENDED:
            raise NotFollowable(
                f"Alert {parent.id} is {parent.status}: follow it up once it has ended "
                "(completed, cancelled or failed), when who it reached is final.",
                parent.status,
            )


async def create(
    session: AsyncSession,
    parent_id: uuid.UUID,
    draft: Draft,
    *,
    actor: audit.Actor,
    approval: Callable[[str], str],
    now: datetime,
    idempotency_key: str | None = None,
) -> Created:
    """Create the follow-up with its frozen audience and, unless it waits for approval, its
    outbox record; or raise. `approval` answers `approvals.needed` for the parent's
    category."""
    digest = draft.digest()
    try:
        async with session.begin():
            parent = await session.get(Alert, parent_id)
            if parent is None:
                raise intake.AlertNotFound(f"Alert {parent_id} does not exist.")
            _check_parent(parent, draft)
            needed = approval(parent.category)
            child_id = uuid.uuid4()
            title = draft.title if draft.title is not None else parent.title
            status = "pending_approval" if needed == "required" else "queued"
            child = Alert(
                id=child_id,
                idempotency_key=idempotency_key,
                request_hash=digest,
                title=title,
                body=draft.body if draft.body is not None else parent.body,
                category=parent.category,
                buttons=parent.buttons,
                audience=Audience(recipients_of=child_id).model_dump(mode="json"),
                status=status,
                status_reason=intake.WAITS if status == "pending_approval" else None,
                author_id=actor.user_id,
                approval=needed,
                parent_id=parent.id,
                relation=draft.relation,
                # a resend says what the parent said, by SMS/LMS too; a correction is new text
                **(_fallback_of(parent) if draft.relation == "resend" else {}),
                created_at=now,
                updated_at=now,
            )
            session.add(child)
            await session.flush()
            chosen, params = _chosen(draft, parent)
            inserted = await session.execute(  # a CursorResult: an INSERT has a row count
                text(
                    "INSERT INTO alert_recipients (alert_id, subscriber_id)"
                    f" SELECT :child, sid FROM ({chosen}) AS chosen(sid)"
                    " ON CONFLICT DO NOTHING"
                ),
                params | {"child": child_id},
            )
            recipients = cast(CursorResult[Any], inserted).rowcount or 0
            if recipients == 0:
                raise NobodyToReach(_nobody(draft, parent))
            if status == "queued":
                session.add(intake.requested_record(child, now))
            audit.record(
                session,
                actor,
                f"alert.{draft.relation}",
                alert_id=parent.id,
                detail={
                    "follow_up_id": str(child_id),
                    "recipients": recipients,
                    "approval": needed,
                },
            )
    except IntegrityError:
        if idempotency_key is None:
            raise
        session.expunge_all()
        return await _replay(session, idempotency_key, digest, parent_id)
    logger.info(
        "%s of %s queued to %d recipients",
        draft.relation,
        parent_id,
        recipients,
        extra={"alert_id": str(child_id)},
    )
    return Created(child, recipients, created=True)


def _fallback_of(parent: Alert) -> dict[str, object]:
    return {
        "fallback_codes": parent.fallback_codes,
        "sms_kind": parent.sms_kind,
        "sms_subject": parent.sms_subject,
        "sms_text": parent.sms_text,
    }


def _nobody(draft: Draft, parent: Alert) -> str:
    if draft.relation == "resend":
        codes = f" with codes {', '.join(map(str, draft.codes))}" if draft.codes else ""
        return (
            f"Nothing to resend: alert {parent.id} has no {' or '.join(draft.outcomes)} "
            f"recipients{codes} that another attempt could change. Nothing was created."
        )
    return f"Nobody to follow up: alert {parent.id} has no {draft.audience}. Nothing was created."


async def _replay(
    session: AsyncSession, idempotency_key: str, digest: str, parent_id: uuid.UUID
) -> Created:
    existing = await session.scalar(select(Alert).where(Alert.idempotency_key == idempotency_key))
    if existing is None:
        raise intake.IdempotencyConflict(f"Idempotency-Key '{idempotency_key}' is in use.")
    if existing.parent_id != parent_id or existing.request_hash != digest:
        raise intake.IdempotencyConflict(
            f"Idempotency-Key '{idempotency_key}' was used for another request "
            f"(alert {existing.id})."
        )
    count = await session.scalar(
        text("SELECT count(*) FROM alert_recipients WHERE alert_id = :id"), {"id": existing.id}
    )
    return Created(existing, int(count or 0), created=False)


def titled(relation: Relation, title: str, prefixed: bool) -> str:
    """The follow-up's title: `[정정]` (or the update's mark) first unless told otherwise."""
    prefix = PREFIXES.get(relation, "")
    if not prefixed or not prefix or title.startswith(prefix.strip()):
        return title
    return prefix + title


def as_codes(values: Sequence[int] | None) -> tuple[int, ...] | None:
    """The codes as a sorted tuple (None: the default choice)."""
    return tuple(sorted(set(values))) if values else None
