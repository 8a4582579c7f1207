"""An alert's rollup as operators read it: the numbers, the rates and the reads per minute.

`load_rollup` is what `GET /v1/alerts/{id}/stats` answers and what `allim stats ID
--database` prints. The counts come from `alert_stats` (written by the analytics consumer),
or are zeros for an alert analytics has not seen yet; status, audience and times are
`reports.figures.progress`, the rates `reports.figures`.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from common.models import Alert, AlertReadsMinute, AlertStats
from reports.figures import Counts, forward_rate, progress, read_rate

# the series covers the first day of an alert: that is when it is read
MAX_SERIES_MINUTES = 24 * 60


class MinuteReads(BaseModel):
    """Taps and new readers of an alert in one minute (UTC, the minute's start)."""

    minute: datetime
    reads: int
    new_readers: int


class ChannelReads(BaseModel):
    """How one channel delivered an alert and how its recipients read it."""

    channel: str = Field(description="`kakao`, or `sms` for the SMS/LMS fallback.")
    delivered: int
    readers: int = Field(description="Readers whose first tap was on a link this channel sent.")
    read_rate: float | None


class Fallback(BaseModel):
    """The SMS/LMS fallback of an alert: those KakaoTalk refused, and how many it reached."""

    handed_over: int = Field(description="Recipients KakaoTalk refused with a fallback code.")
    reached: int = Field(description="Of those, delivered by SMS or LMS.")


class AlertRollup(BaseModel):
    """Everything known about how an alert was delivered and read."""

    alert_id: uuid.UUID
    title: str | None = Field(None, description="The alert's title, when the gateway has it.")
    category: str | None
    status: str | None = Field(None, description="Latest broadcast status.")
    targeted: int = Field(description="Subscribers the broadcast was planned for.")
    delivered: int = Field(description="Recipients the provider accepted the message for.")
    failed: int = Field(description="Recipients the message could not be delivered to.")
    failed_by_reason: dict[str, int] = Field(description="Failed recipients by provider code.")
    readers: int = Field(description="Distinct readers (reader cookies) who opened a link.")
    first_readers: int = Field(description="Links opened: tracked links with a first reader.")
    forwarded_readers: int = Field(
        description="Readers whose first tap was on a link someone else had opened first."
    )
    taps: int = Field(description="Every tap on the alert's links.")
    read_rate: float | None = Field(
        description="readers / delivered (may pass 1.0 through forwards); null before any delivery."
    )
    forward_rate: float = Field(description="forwarded_readers / readers; 0 before any reader.")
    started_at: datetime | None
    completed_at: datetime | None
    duration_seconds: float | None = Field(
        None, description="From the start of the broadcast to its end (or its last delivery)."
    )
    messages_per_second: float | None = Field(
        None, description="(delivered + failed) / duration_seconds."
    )
    updated_at: datetime | None = Field(None, description="When analytics last changed it.")
    channels: list[ChannelReads] = Field(
        default_factory=list, description="Delivered, readers and read rate per channel."
    )
    fallback: Fallback | None = Field(None, description="The SMS/LMS fallback, when it had one.")
    series: list[MinuteReads] = Field(
        description=f"Reads per minute, the first {MAX_SERIES_MINUTES} minutes with reads."
    )


def _duration(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


async def load_rollup(session: AsyncSession, alert_id: uuid.UUID) -> AlertRollup | None:
    """The rollup of `alert_id`, or None when neither analytics nor the gateway knows it."""
    stats = await session.get(AlertStats, alert_id)
    alert = await session.get(Alert, alert_id)
    if stats is None and alert is None:
        return None
    rows = await session.scalars(
        select(AlertReadsMinute)
        .where(AlertReadsMinute.alert_id == alert_id)
        .order_by(AlertReadsMinute.minute)
        .limit(MAX_SERIES_MINUTES)
    )
    series = [MinuteReads(minute=r.minute, reads=r.reads, new_readers=r.new_readers) for r in rows]
    # analytics' counts alone: an alert it has not counted yet has no read rate
    rate = read_rate(stats.readers, stats.delivered) if stats else None
    if stats is None:
        assert alert is not None
        stats = AlertStats(
            alert_id=alert_id,
            category=alert.category,
            targeted=alert.targeted,
            delivered=alert.delivered,
            failed=alert.failed,
            failed_by_reason={},
            readers=0,
            first_readers=0,
            forwarded_readers=0,
            taps=0,
            sms_delivered=0,
            sms_failed=0,
            sms_readers=0,
        )
    broadcast = progress(alert, stats)
    started = broadcast.started_at or stats.first_delivery_at
    completed = broadcast.completed_at
    duration = _duration(started, completed or stats.last_delivery_at)
    sent = stats.delivered + stats.failed
    counts = Counts.of(stats)
    channels = [
        ChannelReads(
            channel=channel,
            delivered=part.delivered,
            readers=part.readers,
            read_rate=part.read_rate,
        )
        for channel, part in counts.by_channel().items()
    ]
    handed_over = (await session.execute(_HANDED_OVER, {"alert": alert_id})).scalar_one()
    fallback = (
        Fallback(handed_over=handed_over, reached=stats.sms_delivered) if handed_over else None
    )
    return AlertRollup(
        alert_id=alert_id,
        title=alert.title if alert else None,
        category=stats.category or (alert.category if alert else None),
        status=broadcast.status,
        targeted=broadcast.targeted,
        delivered=stats.delivered,
        failed=stats.failed,
        failed_by_reason={str(k): int(v) for k, v in stats.failed_by_reason.items()},
        readers=stats.readers,
        first_readers=stats.first_readers,
        forwarded_readers=stats.forwarded_readers,
        taps=stats.taps,
        read_rate=rate,
        forward_rate=forward_rate(stats.forwarded_readers, stats.readers),
        started_at=started,
        completed_at=completed,
        duration_seconds=duration,
        messages_per_second=sent / duration if duration else None,
        updated_at=stats.updated_at,
        channels=channels,
        fallback=fallback,
        series=series,
    )


# the recipients KakaoTalk handed to the SMS/LMS fallback: the distinct recipients of the
# SMS batches, retries of a fallback counted once
_HANDED_OVER = text(
    """
SELECT count(DISTINCT sid) FROM batches f, unnest(f.subscriber_ids) AS sid
WHERE f.alert_id = :alert AND f.channel = 'sms'
"""
)
