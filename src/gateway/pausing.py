"""Pause and resume: an operator holds a running alert, and lets it go on where it stopped.

A pause sets `alerts.paused_at` and queues `AlertControl(pause)` on `alerts.control` in one
transaction; a resume clears it and queues `AlertControl(resume)`. The broadcaster's senders
hold the alert's batches from the control record (within a second) and from the alerts table
(every sender reads it when a shard starts and at each control poll), so a sender started
while the alert is paused holds it too, and a lost record is made good by the poll. The
broadcaster's own status is left alone; the API shows `paused` while `paused_at` is set.

Errors (all `PauseError`, plus `intake.AlertNotFound`):

    PauseError
    ├── NotRunning    the alert is not queued, scheduled or sending (pending, ended, ...)
    └── NotChanged    pausing a paused alert, or resuming one that is not paused
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from common.messages import AlertControl
from common.models import Alert, OutboxEntry
from common.topics import ALERTS_CONTROL
from gateway import audit, intake

logger = logging.getLogger(__name__)

RUNNING = frozenset({"queued", "scheduled", "sending"})
Action = Literal["pause", "resume"]


class PauseError(Exception):
    """A pause or resume that is refused; the message says why."""

    def __init__(self, detail: str, status: str) -> None:
        super().__init__(detail)
        self.status = status


class NotRunning(PauseError):
    """Only a queued, scheduled or sending alert can be paused or resumed."""


class NotChanged(PauseError):
    """The alert is already as asked."""


def shown_status(status: str, paused_at: datetime | None) -> str:
    """The status the API shows: `paused` for a running alert held by an operator."""
    return "paused" if paused_at is not None and status in RUNNING else status


async def change(
    session: AsyncSession, alert_id: uuid.UUID, action: Action, actor: audit.Actor, now: datetime
) -> Alert:
    """Pause or resume the alert, with its control record and audit row, or raise."""
    async with session.begin():
        alert = await session.get(Alert, alert_id, with_for_update=True)
        if alert is None:
            raise intake.AlertNotFound(f"Alert {alert_id} does not exist.")
        shown = shown_status(alert.status, alert.paused_at)
        if alert.status not in RUNNING:
            raise NotRunning(
                f"Alert {alert_id} is {shown}: only a queued, scheduled or sending alert can "
                f"be {'paused' if action == 'pause' else 'resumed'}.",
                shown,
            )
        if (action == "pause") == (alert.paused_at is not None):
            raise NotChanged(
                f"Alert {alert_id} is {'paused already' if action == 'pause' else 'not paused'}.",
                shown,
            )
        alert.paused_at = now if action == "pause" else None
        alert.updated_at = now
        control = AlertControl(alert_id=alert.id, action=action, requested_at=now)
        session.add(
            OutboxEntry(
                topic=ALERTS_CONTROL, key=str(alert.id), payload=control.model_dump(mode="json")
            )
        )
        audit.record(
            session, actor, f"alert.{action}", alert_id=alert.id, detail={"status": alert.status}
        )
    logger.info("alert %sd", action, extra={"alert_id": str(alert_id)})
    return alert
