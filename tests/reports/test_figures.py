"""Status and rates of an alert, defined once for the gateway, the CLI and analytics."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from common.models import Alert, AlertStats
from reports.figures import Progress, forward_rate, progress, read_rate

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def _alert(**values: object) -> Alert:
    return Alert(id=uuid.UUID(int=1), category="public", **values)


def _stats(**values: object) -> AlertStats:
    return AlertStats(alert_id=uuid.UUID(int=1), category="public", **values)


def test_read_rate_is_readers_over_delivered_and_none_before_any_delivery() -> None:
    assert read_rate(0, 0) is None
    assert read_rate(3, 0) is None  # taps on a link whose delivery analytics has not counted
    assert read_rate(0, 4) == 0.0
    assert read_rate(3, 4) == 0.75
    assert read_rate(214, 200) == 1.07  # forwards take it past 1.0


def test_forward_rate_is_forwarded_over_readers_and_zero_before_any_reader() -> None:
    assert forward_rate(0, 0) == 0.0
    assert forward_rate(64, 214) == 64 / 214


def test_the_alerts_row_wins_over_the_lifecycle_events() -> None:
    alert = _alert(status="cancelled", targeted=1000, started_at=T0, completed_at=None)
    # a `sending` event published before the cancel, and an end analytics saw
    stats = _stats(
        status="sending",
        targeted=900,
        started_at=T0 + timedelta(seconds=1),
        completed_at=T0 + timedelta(seconds=30),
    )

    assert progress(alert, stats) == Progress(
        status="cancelled",
        targeted=1000,
        started_at=T0,
        completed_at=T0 + timedelta(seconds=30),  # the row has no end yet: the event's
    )


def test_without_an_alerts_row_the_lifecycle_events_say_it() -> None:
    stats = _stats(status="completed", targeted=900, started_at=T0, completed_at=T0)
    assert progress(None, stats) == Progress("completed", 900, T0, T0)
    assert progress(None, None) == Progress(None, 0, None, None)


def test_without_lifecycle_events_the_alerts_row_says_it() -> None:
    alert = _alert(status="queued", targeted=0, started_at=None, completed_at=None)
    assert progress(alert, None) == Progress("queued", 0, None, None)
