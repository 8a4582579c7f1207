"""Exactly-once alert intake: the alert row and its outbox record in one transaction.

The outbox relay (`gateway.outbox`) later publishes the record, so an accepted alert
reaches `alerts.requested` even when Kafka is down at the time of the POST.

Duplicates end in one alert:
- an `Idempotency-Key` is unique on `alerts`: the same key with the same request returns
  the first alert, with another request it is `IdempotencyConflict`;
- a CAP alert is unique by (sender, identifier, sent): a repeat returns the first alert.
Concurrent duplicates race on those unique constraints; the loser reads the winner's row.

Errors (all `IntakeError`):

    IntakeError
    ├── IdempotencyConflict   same key, another request
    ├── AlertNotFound         no alert with that id
    └── NotCancellable        the alert is completed, failed, rejected, expired, or was
                              never broadcast

An alert that needs approval (`gateway.approvals`) is stored `pending_approval` without its
outbox record; approving it writes the record then.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from common.messages import AlertControl, AlertRequested, Audience, Button, Category
from common.models import Alert, OutboxEntry
from common.topics import ALERTS_CONTROL, ALERTS_REQUESTED
from gateway import audiences, audit
from gateway.fallback import FallbackPlan
from gateway.schemas import AlertCreate

logger = logging.getLogger(__name__)

WAITS = "Waits for an approver who is not its author."


class IntakeError(Exception):
    """A request the intake refuses; the message says why."""


class IdempotencyConflict(IntakeError):
    """The Idempotency-Key was used before with a different request."""


class AlertNotFound(IntakeError):
    """No alert has the given id."""


class NotCancellable(IntakeError):
    """The alert is in a status that cannot be cancelled."""

    def __init__(self, alert_id: uuid.UUID, status: str) -> None:
        super().__init__(f"Alert {alert_id} is {status} and can no longer be cancelled.")
        self.status = status


@dataclass(frozen=True)
class CapOrigin:
    """Where a CAP alert came from: its (sender, identifier, sent) triple, as written."""

    sender: str
    identifier: str
    sent: str


@dataclass(frozen=True)
class Submitted:
    """The outcome of a submission: the alert, and whether this call created it."""

    alert: Alert
    created: bool


def request_hash(request: AlertCreate, origin: CapOrigin | None, hold: str | None) -> str:
    """A digest of everything that defines the alert, to tell a replay from a new request."""
    digest = hashlib.sha256(request.model_dump_json().encode())
    if origin is not None:
        digest.update(f"\0{origin.sender}\0{origin.identifier}\0{origin.sent}".encode())
    if hold is not None:
        digest.update(f"\0hold:{hold}".encode())
    return digest.hexdigest()


def initial_status(request: AlertCreate, hold: str | None, approval: str, now: datetime) -> str:
    """`not_broadcast` when held back, `pending_approval` when it needs approval, else
    `release_status`."""
    if hold is not None:
        return "not_broadcast"
    if approval == "required":
        return "pending_approval"
    return release_status(request.send_at, now)


def release_status(send_at: datetime | None, now: datetime) -> str:
    """The status of an alert let go: `scheduled` when it starts later, else `queued`."""
    if send_at is not None and send_at > now:
        return "scheduled"
    return "queued"


async def submit(
    session: AsyncSession,
    request: AlertCreate,
    *,
    actor: audit.Actor,
    approval: str = "off",
    idempotency_key: str | None = None,
    origin: CapOrigin | None = None,
    hold: str | None = None,
    follows: tuple[uuid.UUID, str] | None = None,
    fallback: FallbackPlan | None = None,
) -> Submitted:
    """Store the alert and, unless it waits for approval or `hold` says why not, its
    `AlertRequested` outbox record.

    `audiences.AudienceRefused` when the audience names an unknown district or tag, or
    reaches nobody: then nothing is stored.

    `approval` is `gateway.approvals.needed`'s answer; `hold` is the reason an accepted
    alert is not broadcast (a CAP Test/Exercise/Draft); `follows` is (parent id, relation)
    for an alert linked to another (a CAP Update of an alert still under way); `fallback`
    its SMS/LMS for those KakaoTalk refuses (`gateway.fallback.plan`).
    """
    digest = request_hash(request, origin, hold)
    now = datetime.now(UTC)
    status = initial_status(request, hold, approval, now)
    alert = Alert(
        id=uuid.uuid4(),
        idempotency_key=idempotency_key,
        request_hash=digest,
        title=request.title,
        body=request.body,
        category=request.category,
        buttons=[b.model_dump() for b in request.message_buttons()],
        audience=request.audience.to_message().model_dump(),
        send_at=request.send_at,
        expires_at=request.expires_at,
        deliver_within=request.deliver_within,
        status=status,
        status_reason=hold or (WAITS if status == "pending_approval" else None),
        author_id=actor.user_id,
        approval=approval,
        parent_id=follows[0] if follows else None,
        relation=follows[1] if follows else None,
        fallback_codes=list(fallback.codes) if fallback else None,
        sms_kind=fallback.message.kind if fallback else None,
        sms_subject=fallback.message.subject if fallback else None,
        sms_text=fallback.message.text if fallback else None,
        cap_sender=origin.sender if origin else None,
        cap_identifier=origin.identifier if origin else None,
        cap_sent=origin.sent if origin else None,
        created_at=now,
        updated_at=now,
    )
    try:
        # no look-up first: the unique constraints find duplicates in the same round trip
        async with session.begin():
            await audiences.check(session, request.audience.to_message())
            session.add(alert)
            if status in ("queued", "scheduled"):
                session.add(requested_record(alert, now))
            detail = {
                "title": alert.title,
                "category": alert.category,
                "status": alert.status,
                "approval": approval,
            }
            if origin:
                detail["cap_identifier"] = origin.identifier
            audit.record(session, actor, "alert.create", alert_id=alert.id, detail=detail)
    except IntegrityError:
        # a repeat, or a concurrent duplicate that committed first: answer with its alert
        session.expunge_all()
        existing = await _find_duplicate(session, idempotency_key, origin)
        if existing is None:
            raise
        return Submitted(_replay(existing, idempotency_key, digest), created=False)
    logger.info("alert accepted (%s)", alert.status, extra={"alert_id": str(alert.id)})
    return Submitted(alert, created=True)


async def cancel(session: AsyncSession, alert_id: uuid.UUID, *, actor: audit.Actor) -> Alert:
    """Mark the alert cancelled and queue `AlertControl(cancel)` on `alerts.control`.

    Cancelling a cancelled alert changes nothing and queues nothing.
    """
    async with session.begin():
        alert = await session.get(Alert, alert_id, with_for_update=True)
        if alert is None:
            raise AlertNotFound(f"Alert {alert_id} does not exist.")
        _cancel_locked(session, alert, "Cancelled by an operator.", actor)
    return alert


async def cancel_cap(
    session: AsyncSession, references: tuple[CapOrigin, ...], *, actor: audit.Actor
) -> list[Alert]:
    """Cancel the alerts a CAP Cancel references, all or none; `AlertNotFound` if none exist."""
    async with session.begin():
        found = []
        for origin in references:
            alert = await find_cap(session, origin, lock=True)
            if alert is not None:
                _cancel_locked(session, alert, f"Cancelled by CAP from {origin.sender}.", actor)
                found.append(alert)
        if not found:
            named = " ".join(f"{o.sender},{o.identifier},{o.sent}" for o in references)
            raise AlertNotFound(f"No alert came from the referenced CAP alerts: {named}.")
    return found


async def find_cap(session: AsyncSession, origin: CapOrigin, *, lock: bool = False) -> Alert | None:
    """The alert that came from this CAP (sender, identifier, sent), if any."""
    query = select(Alert).where(
        Alert.cap_sender == origin.sender,
        Alert.cap_identifier == origin.identifier,
        Alert.cap_sent == origin.sent,
    )
    alert: Alert | None = await session.scalar(query.with_for_update() if lock else query)
    return alert


def _cancel_locked(session: AsyncSession, alert: Alert, reason: str, actor: audit.Actor) -> None:
    # the caller holds the row lock, so the status check and the change are one step
    if alert.status == "cancelled":
        return
    if alert.status in ("completed", "failed", "not_broadcast", "rejected", "expired"):
        raise NotCancellable(alert.id, alert.status)
    now = datetime.now(UTC)
    # an alert still waiting for approval never reached the broadcaster: nothing to stop
    announced = alert.status != "pending_approval"
    alert.status = "cancelled"
    alert.status_reason = reason
    alert.cancelled_at = now
    alert.updated_at = now
    if announced:
        control = AlertControl(alert_id=alert.id, action="cancel", requested_at=now)
        session.add(
            OutboxEntry(
                topic=ALERTS_CONTROL, key=str(alert.id), payload=control.model_dump(mode="json")
            )
        )
    audit.record(session, actor, "alert.cancel", alert_id=alert.id, detail={"reason": reason})
    logger.info("alert cancelled", extra={"alert_id": str(alert.id)})


def requested_record(alert: Alert, now: datetime) -> OutboxEntry:
    """The outbox record that hands the stored alert to the broadcaster."""
    message = AlertRequested(
        alert_id=alert.id,
        title=alert.title,
        body=alert.body,
        category=cast(Category, alert.category),
        buttons=[Button.model_validate(b) for b in alert.buttons],
        audience=Audience.model_validate(alert.audience),
        send_at=alert.send_at,
        expires_at=alert.expires_at,
        requested_at=now,
    )
    return OutboxEntry(
        topic=ALERTS_REQUESTED, key=str(alert.id), payload=message.model_dump(mode="json")
    )


async def _find_duplicate(
    session: AsyncSession, idempotency_key: str | None, origin: CapOrigin | None
) -> Alert | None:
    if idempotency_key is not None:
        alert: Alert | None = await session.scalar(
            select(Alert).where(Alert.idempotency_key == idempotency_key)
        )
        if alert is not None:
            return alert
    if origin is not None:
        return await find_cap(session, origin)
    return None


def _replay(existing: Alert, idempotency_key: str | None, digest: str) -> Alert:
    # a CAP repeat without a key is one alert by definition; a key demands the same request
    if (
        idempotency_key is not None
        and existing.idempotency_key == idempotency_key
        and existing.request_hash != digest
    ):
        raise IdempotencyConflict(
            f"Idempotency-Key '{idempotency_key}' was used for another request "
            f"(alert {existing.id})."
        )
    return existing
