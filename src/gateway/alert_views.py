"""An alert as the API shows it: its row, its progress, its read rate, and who decided."""

from __future__ import annotations

import uuid
from typing import cast

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from common.messages import Audience, Button, Category
from common.models import Alert, AlertStats, User
from common.problems import Problem
from gateway.followups import Relation
from gateway.pausing import shown_status
from gateway.schemas import AlertPublic, AlertStatus, Approval
from reports.figures import read_rate

_author = aliased(User)
_decider = aliased(User)


def with_stats() -> Select[Alert, int | None, int | None, str | None, str | None]:
    """Alerts with analytics' counts and the names of their author and approver."""
    # the stats columns are NULL until analytics has written the alert's row
    return (
        select(Alert, AlertStats.readers, AlertStats.delivered, _author.name, _decider.name)
        .outerjoin(AlertStats, AlertStats.alert_id == Alert.id)
        .outerjoin(_author, _author.id == Alert.author_id)
        .outerjoin(_decider, _decider.id == Alert.decided_by_id)
    )


async def load(session: AsyncSession, alert_id: uuid.UUID) -> AlertPublic:
    """The alert as the API shows it; a 404 problem when there is none."""
    row = (await session.execute(with_stats().where(Alert.id == alert_id))).one_or_none()
    if row is None:
        raise Problem(404, "Not Found", f"Alert {alert_id} does not exist.")
    return public(*row)


def public(
    alert: Alert,
    readers: int | None,
    stats_delivered: int | None,
    author: str | None,
    decided_by: str | None,
) -> AlertPublic:
    """One row of `with_stats` as the API shows it."""
    # no alert_stats row yet: no readers (null), and no delivery counted, so no read rate
    return AlertPublic(
        id=alert.id,
        status=cast(AlertStatus, shown_status(alert.status, alert.paused_at)),
        status_reason=alert.status_reason,
        title=alert.title,
        body=alert.body,
        category=cast(Category, alert.category),
        buttons=[Button.model_validate(b) for b in alert.buttons],
        audience=Audience.model_validate(alert.audience),
        send_at=alert.send_at,
        expires_at=alert.expires_at,
        created_at=alert.created_at,
        started_at=alert.started_at,
        completed_at=alert.completed_at,
        cancelled_at=alert.cancelled_at,
        targeted=alert.targeted,
        delivered=alert.delivered,
        failed=alert.failed,
        pending=max(alert.targeted - alert.delivered - alert.failed, 0),
        readers=readers,
        read_rate=read_rate(readers or 0, stats_delivered or 0),
        cap_identifier=alert.cap_identifier,
        author=author,
        approval=cast(Approval, alert.approval),
        decided_by=decided_by,
        decided_at=alert.decided_at,
        test_of=alert.test_of,
        parent_id=alert.parent_id,
        relation=cast(Relation | None, alert.relation),
    )
