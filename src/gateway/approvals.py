"""Two-person approval: who must approve an alert, approve, reject, and expiry while waiting.

An alert created by a person waits in `pending_approval` unless the deployment switched
approval off (`off`), exempts its category (`exempt`), or lets machine feeds skip it and
the key is one (`machine_feed`); `needed` answers which, and the answer is stored on the
alert and in its audit row. An approver who is not the author approves it: its status
becomes `queued` or `scheduled`, and its `AlertRequested` record is written to the outbox in
the same transaction. The row is locked while this happens, so two approvals at once
broadcast once; the second finds it no longer pending. A rejection ends it (`rejected`,
with the reason). An alert whose `expires_at` passes while it waits becomes `expired` and
is never sent: the approval that comes too late says so, and `expire_due` sweeps the rest.

Errors (all `ApprovalError`):

    ApprovalError
    ├── NotPending        the alert is not waiting for approval (its status says why)
    ├── OwnAlert          the approver wrote the alert (with any of their keys or sessions)
    └── ExpiredWaiting    its expiry passed while it waited; it is now `expired`
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.models import Alert
from gateway import audit, intake
from gateway.auth import Principal
from gateway.config import GatewaySettings

logger = logging.getLogger(__name__)

MAX_REASON = 500
SYSTEM = audit.Actor(name="allim")


class ApprovalError(Exception):
    """An approval or rejection that is refused; the message says why."""


class NotPending(ApprovalError):
    """The alert is not waiting for approval."""

    def __init__(self, alert_id: uuid.UUID, status: str) -> None:
        super().__init__(f"Alert {alert_id} is {status}, not waiting for approval.")
        self.status = status


class OwnAlert(ApprovalError):
    """An approver may not decide on an alert they wrote."""


class ExpiredWaiting(ApprovalError):
    """The alert expired while it waited; it was marked `expired`."""


def needed(principal: Principal, category: str, settings: GatewaySettings) -> str:
    """`required`, or why not: `off`, `exempt` (its category) or `machine_feed`."""
    if not settings.gateway_approval_required:
        return "off"
    if category in settings.gateway_approval_exempt_categories:
        return "exempt"
    if principal.machine_feed and settings.gateway_machine_feeds_skip_approval:
        return "machine_feed"
    return "required"


async def approve(
    session: AsyncSession, alert_id: uuid.UUID, approver: Principal, now: datetime
) -> Alert:
    """Let the alert go (`queued` or `scheduled`) with its outbox record, or raise."""
    expired = False
    async with session.begin():
        alert = await _pending(session, alert_id, approver)
        if alert.expires_at is not None and alert.expires_at <= now:
            _expire(session, alert, now, SYSTEM)
            expired = True
        else:
            alert.status = intake.release_status(alert.send_at, now)
            alert.status_reason = None
            _decided(alert, approver, now)
            session.add(intake.requested_record(alert, now))
            audit.record(
                session,
                audit.Actor.of(approver),
                "alert.approve",
                alert_id=alert.id,
                detail={"status": alert.status},
            )
    if expired:
        raise ExpiredWaiting(
            f"Alert {alert_id} expired at {alert.expires_at:%Y-%m-%d %H:%M:%S} UTC while it "
            "waited for approval; it will not be sent."
        )
    logger.info("alert approved (%s)", alert.status, extra={"alert_id": str(alert.id)})
    return alert


async def reject(
    session: AsyncSession, alert_id: uuid.UUID, approver: Principal, reason: str, now: datetime
) -> Alert:
    """End the alert as `rejected` with the approver's reason, or raise."""
    async with session.begin():
        alert = await _pending(session, alert_id, approver)
        alert.status = "rejected"
        alert.status_reason = f"Rejected by {approver.name}: {reason}"
        _decided(alert, approver, now)
        audit.record(
            session,
            audit.Actor.of(approver),
            "alert.reject",
            alert_id=alert.id,
            detail={"reason": reason},
        )
    logger.info("alert rejected", extra={"alert_id": str(alert.id)})
    return alert


async def expire_due(session: AsyncSession, now: datetime) -> list[uuid.UUID]:
    """Mark `expired` every alert whose expiry passed while it waited; their ids."""
    async with session.begin():
        rows = await session.execute(
            update(Alert)
            .where(Alert.status == "pending_approval", Alert.expires_at <= now)
            .values(status="expired", status_reason=_expired_reason(), updated_at=now)
            .returning(Alert.id, Alert.expires_at)
        )
        expired = rows.all()
        for alert_id, expires_at in expired:
            audit.record(
                session,
                SYSTEM,
                "alert.expire",
                alert_id=alert_id,
                detail={"expires_at": expires_at.isoformat() if expires_at else None},
            )
    for alert_id, _ in expired:
        logger.info("alert expired waiting for approval", extra={"alert_id": str(alert_id)})
    return [alert_id for alert_id, _ in expired]


def check_reason(reason: str) -> str:
    """The reason stripped; `ValueError` when empty or longer than `MAX_REASON`."""
    stripped = reason.strip()
    if not stripped:
        raise ValueError("A rejection needs a reason: say what to change.")
    if len(stripped) > MAX_REASON:
        raise ValueError(
            f"A reason is at most {MAX_REASON} characters; this one has {len(stripped)}."
        )
    return stripped


async def _pending(session: AsyncSession, alert_id: uuid.UUID, approver: Principal) -> Alert:
    alert = await session.get(Alert, alert_id, with_for_update=True)
    if alert is None or alert.test_of is not None:
        raise intake.AlertNotFound(f"Alert {alert_id} does not exist.")
    if alert.status != "pending_approval":
        raise NotPending(alert.id, alert.status)
    if alert.author_id is not None and alert.author_id == approver.user_id:
        raise OwnAlert(
            f"{approver.name} wrote alert {alert_id}: another approver must decide on it."
        )
    return alert


def _decided(alert: Alert, approver: Principal, now: datetime) -> None:
    alert.decided_by_id = approver.user_id
    alert.decided_at = now
    alert.updated_at = now


def _expire(session: AsyncSession, alert: Alert, now: datetime, actor: audit.Actor) -> None:
    alert.status = "expired"
    alert.status_reason = _expired_reason()
    alert.updated_at = now
    detail = {"expires_at": alert.expires_at.isoformat() if alert.expires_at else None}
    audit.record(session, actor, "alert.expire", alert_id=alert.id, detail=detail)


def _expired_reason() -> str:
    return "Its expiry passed while it waited for approval; it was not sent."


async def sweep_forever(sessions: async_sessionmaker[AsyncSession], every_seconds: float) -> None:
    """Run `expire_due` every `every_seconds` until cancelled; database errors are logged."""
    while True:
        try:
            async with sessions() as session:
                await expire_due(session, datetime.now(UTC))
        except (SQLAlchemyError, OSError):
            logger.warning("the approval expiry sweep failed; it runs again", exc_info=True)
        await asyncio.sleep(every_seconds)
