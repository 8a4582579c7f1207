"""An alert's status and rates, each defined once for every view of the alert.

The gateway (`GET /v1/alerts/{id}` and its `/stats`), the CLI (`allim stats`) and analytics
(the `alerts.stats` snapshots and the per-alert gauges) all take them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from common.messages import Channel, ChannelStatsData
from common.models import Alert, AlertStats


def read_rate(readers: int, delivered: int) -> float | None:
    """`readers / delivered`, None before any delivery; forwards can take it past 1.0.

    Both counts are analytics' (`alert_stats`): the readers and the deliveries they read are
    counted by one consumer, so the rate never divides one service's count by another's.
    """
    return readers / delivered if delivered else None


def forward_rate(forwarded_readers: int, readers: int) -> float:
    """`forwarded_readers / readers`, 0.0 before any reader."""
    return forwarded_readers / readers if readers else 0.0


class Row(Protocol):
    """A database row read by column name (an asyncpg record)."""

    def __getitem__(self, name: str) -> Any: ...


@dataclass(frozen=True)
class Counts:
    """Delivered, failed and readers of an alert in total, and the SMS/LMS fallback's part."""

    # the `alert_stats` columns it is made of, in its order (analytics' deltas name them alike)
    FIELDS = ("delivered", "failed", "readers", "sms_delivered", "sms_failed", "sms_readers")

    delivered: int
    failed: int
    readers: int
    sms_delivered: int = 0
    sms_failed: int = 0
    sms_readers: int = 0

    @classmethod
    def of(cls, source: object) -> Counts:
        """The counts of an `alert_stats` model or an analytics delta (attributes by column)."""
        return cls(*(getattr(source, name) for name in cls.FIELDS))

    @classmethod
    def of_row(cls, row: Row) -> Counts:
        """The counts of an `alert_stats` row read with its columns."""
        return cls(*(row[name] for name in cls.FIELDS))

    def by_channel(self) -> dict[Channel, ChannelStatsData]:
        """KakaoTalk's part (the totals less SMS/LMS's), and the fallback's once it sent."""
        parts: dict[Channel, tuple[int, int, int]] = {
            "kakao": (
                self.delivered - self.sms_delivered,
                self.failed - self.sms_failed,
                self.readers - self.sms_readers,
            )
        }
        if self.sms_delivered or self.sms_failed or self.sms_readers:
            parts["sms"] = (self.sms_delivered, self.sms_failed, self.sms_readers)
        return {
            channel: ChannelStatsData(
                delivered=delivered,
                failed=failed,
                readers=readers,
                read_rate=read_rate(readers, delivered),
            )
            for channel, (delivered, failed, readers) in parts.items()
        }


@dataclass(frozen=True)
class Progress:
    """Where an alert's broadcast stands: its status, its audience, when it began and ended."""

    status: str | None
    targeted: int
    started_at: datetime | None
    completed_at: datetime | None


def progress(alert: Alert | None, stats: AlertStats | None) -> Progress:
    """The alerts row's status, audience and times; analytics' copy of the lifecycle events
    only where there is no row, or the row has no time yet."""
    # the gateway and the broadcaster write the row themselves (the gateway's `cancelled` is
    # final there), and the lifecycle events are published after it commits: they can only
    # lag behind it, never lead
    if alert is None:
        if stats is None:
            return Progress(None, 0, None, None)
        return Progress(stats.status, stats.targeted, stats.started_at, stats.completed_at)
    return Progress(
        status=alert.status,
        targeted=alert.targeted,
        started_at=alert.started_at or (stats.started_at if stats else None),
        completed_at=alert.completed_at or (stats.completed_at if stats else None),
    )
