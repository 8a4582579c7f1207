"""Per-alert gauges stay bounded; counters follow applied deltas."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from prometheus_client import generate_latest

from analytics.metrics import AnalyticsMetrics
from analytics.store import AlertDelta, Applied
from common.messages import AlertStatsData
from reports.figures import read_rate


def _snapshot(alert: uuid.UUID, readers: int, delivered: int = 100) -> AlertStatsData:
    return AlertStatsData(
        alert_id=alert,
        category="public",
        targeted=100,
        delivered=delivered,
        failed=0,
        failed_by_reason={},
        readers=readers,
        first_readers=readers,
        forwarded_readers=0,
        taps=readers,
        read_rate=read_rate(readers, delivered),
        forward_rate=0.0,
        updated_at=datetime.now(UTC),
    )


def test_only_the_most_recently_changed_alerts_keep_gauges() -> None:
    metrics = AnalyticsMetrics(recent_alerts=2)
    a, b, c = (uuid.UUID(int=n) for n in (1, 2, 3))
    metrics.show(_snapshot(a, 10))
    metrics.show(_snapshot(b, 20))
    metrics.show(_snapshot(a, 30))  # a changed again: b is now the oldest
    metrics.show(_snapshot(c, 40))

    assert metrics.shown() == [str(a), str(c)]
    text = generate_latest(metrics.registry).decode()
    assert f'allim_alert_readers{{alert_id="{a}"}} 30.0' in text
    assert f'allim_alert_read_rate{{alert_id="{c}"}} 0.4' in text
    assert str(b) not in text


def test_an_alert_without_a_delivery_has_no_read_rate_gauge() -> None:
    metrics = AnalyticsMetrics()
    alert = uuid.UUID(int=1)
    metrics.show(_snapshot(alert, 1, delivered=0))

    text = generate_latest(metrics.registry).decode()
    assert f'allim_alert_readers{{alert_id="{alert}"}} 1.0' in text
    assert f'allim_alert_read_rate{{alert_id="{alert}"}}' not in text

    metrics.show(_snapshot(alert, 1, delivered=4))
    text = generate_latest(metrics.registry).decode()
    assert f'allim_alert_read_rate{{alert_id="{alert}"}} 0.25' in text


def test_counters_add_deltas_by_category_and_kind() -> None:
    metrics = AnalyticsMetrics()
    applied = Applied(
        new_events=5,
        alerts={
            uuid.UUID(int=1): AlertDelta(
                category="emergency",
                delivered=90,
                failed=10,
                taps=7,
                readers=5,
                forwarded_readers=2,
            ),
            uuid.UUID(int=2): AlertDelta(taps=1, readers=1),
        },
    )
    metrics.count(applied)
    text = generate_latest(metrics.registry).decode()
    for line in (
        'allim_analytics_deliveries_total{category="emergency",outcome="delivered"} 90.0',
        'allim_analytics_deliveries_total{category="emergency",outcome="failed"} 10.0',
        'allim_analytics_taps_total{category="emergency"} 7.0',
        'allim_analytics_readers_total{category="emergency",kind="direct"} 3.0',
        'allim_analytics_readers_total{category="emergency",kind="forwarded"} 2.0',
        'allim_analytics_taps_total{category="unknown"} 1.0',
    ):
        assert line in text, line
