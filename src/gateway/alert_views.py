"""An alert as the API shows it: its row, its progress, its read rate, and who decided."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Select, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from common.messages import Audience, Button, Category
from common.models import Alert, AlertStats, User
from common.problems import Problem
from gateway.followups import Relation
from gateway.pausing import shown_status
from gateway.schemas import AlertPublic, AlertStatus, Approval, ChannelCounts
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
    """The alert as the API shows it, with its counts per channel; a 404 problem when there
    is none."""
    row = (await session.execute(with_stats().where(Alert.id == alert_id))).one_or_none()
    if row is None:
        raise Problem(404, "Not Found", f"Alert {alert_id} does not exist.")
    shown = public(*row)
    channels = {
        r.channel: ChannelCounts(delivered=r.delivered, failed=r.failed, fallback=r.fallback)
        for r in (await session.execute(_CHANNELS, {"alert": alert_id})).all()
    }
    return shown.model_copy(update={"channels": channels})


# per channel: what its batches settled; for `kakao`, how many it handed to SMS/LMS (the
# distinct recipients of the SMS batches, retries of a fallback counted once)
_CHANNELS = text(
    """
SELECT b.channel, sum(b.delivered)::bigint AS delivered, sum(b.failed)::bigint AS failed,
       CASE WHEN b.channel = 'kakao' THEN (
           SELECT count(DISTINCT sid) FROM batches f, unnest(f.subscriber_ids) AS sid
           WHERE f.alert_id = :alert AND f.channel = 'sms'
       ) ELSE 0 END AS fallback
FROM batches b WHERE b.alert_id = :alert
GROUP BY b.channel
"""
)


def public(
    alert: Alert,
    readers: int | None,
    stats_delivered: int | None,
    author: str | None,
    decided_by: str | None,
) -> AlertPublic:
    """One row of `with_stats` as the API shows it."""
    # no alert_stats row yet: no readers (null), and no delivery counted, so no read rate
    pace = Pace.of(alert, datetime.now(UTC))
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
        send_rate=pace.rate,
        eta=pace.eta,
        deliver_within=alert.deliver_within,
        deadline=pace.deadline,
        late=pace.late,
    )


@dataclass(frozen=True)
class Pace:
    """How fast an alert is sent, when it will end, and whether it keeps its deadline."""

    rate: float | None
    eta: datetime | None
    deadline: datetime | None
    late: bool

    @classmethod
    def of(cls, alert: Alert, now: datetime, rate: float | None = None) -> Pace:
        """The pace of `alert` at `now`: at `rate` (recipients/s) when given, else at the
        rate since its start."""
        started = alert.started_at
        settled = alert.delivered + alert.failed
        pending = max(alert.targeted - settled, 0)
        if rate is None and started is not None and settled > 0:
            elapsed = (now - started).total_seconds()
            rate = settled / elapsed if elapsed > 0 else None
        sending = alert.status == "sending"
        eta = now + timedelta(seconds=pending / rate) if sending and rate else None
        if sending and pending == 0:
            eta = now
        deadline = (
            started + timedelta(seconds=alert.deliver_within)
            if started is not None and alert.deliver_within is not None
            else None
        )
        late = deadline is not None and (
            (alert.completed_at is not None and alert.completed_at > deadline)
            or (sending and (now > deadline or (eta is not None and eta > deadline)))
        )
        return cls(rate if sending else None, eta, deadline, late)


# the event stream's send rate is measured over at least this many seconds
RATE_WINDOW = 5.0
# what the stream compares to tell a change: everything but the clock's own figures
_CLOCKED = frozenset({"send_rate", "eta", "late"})


def progress_of(shown: AlertPublic) -> dict[str, object]:
    """What changes when the alert progresses (not the figures that move with the clock)."""
    return shown.model_dump(exclude=set(_CLOCKED))


class RateWindow:
    """An alert's recent send rate, from the stream's successive reads of it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._marks: list[tuple[float, int]] = []  # (clock time, settled)

    def paced(self, shown: AlertPublic) -> AlertPublic:
        """`shown` with its send rate over the last `RATE_WINDOW` seconds (once that much
        was seen) and the estimate and lateness that rate gives."""
        now = self._clock()
        settled = shown.delivered + shown.failed
        self._marks.append((now, settled))
        while len(self._marks) > 2 and now - self._marks[1][0] >= RATE_WINDOW:
            self._marks.pop(0)
        first_at, first = self._marks[0]
        if shown.status != "sending" or now - first_at < RATE_WINDOW:
            return shown
        rate = (settled - first) / (now - first_at)
        wall = datetime.now(UTC)
        eta = wall + timedelta(seconds=shown.pending / rate) if rate > 0 else None
        late = shown.deadline is not None and (
            wall > shown.deadline or (eta is not None and eta > shown.deadline)
        )
        return shown.model_copy(update={"send_rate": rate, "eta": eta, "late": late})
