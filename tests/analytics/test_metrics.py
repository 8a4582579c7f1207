"""Per-alert gauges stay bounded; counters follow applied deltas."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from prometheus_client import generate_latest

from analytics.metrics import AnalyticsMetrics
from analytics.store import AlertDelta, Applied
from common.messages import AlertStatsData, ChannelStatsData
from reports.figures import read_rate

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


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


def _series(metrics: AnalyticsMetrics) -> set[str]:
    """The alert ids that have any per-alert series."""
    return {
        sample.labels["alert_id"]
        for family in metrics.registry.collect()
        for sample in family.samples
        if "alert_id" in sample.labels
    }


def test_the_first_shown_alerts_keep_gauges_and_a_late_change_moves_none_up() -> None:
    metrics = AnalyticsMetrics(recent_alerts=2)
    a, b, c = (uuid.UUID(int=n) for n in (1, 2, 3))
    metrics.show(_snapshot(a, 10))
    metrics.show(_snapshot(b, 20))
    metrics.show(_snapshot(a, 30))  # a changed again: it keeps its place, the oldest
    metrics.show(_snapshot(c, 40))

    assert metrics.shown() == [str(b), str(c)]
    assert _series(metrics) == {str(b), str(c)}
    text = generate_latest(metrics.registry).decode()
    assert f'allim_alert_readers{{alert_id="{b}"}} 20.0' in text
    assert f'allim_alert_read_rate{{alert_id="{c}"}} 0.4' in text


def test_an_alert_that_gave_its_place_up_is_not_shown_again() -> None:
    metrics = AnalyticsMetrics(recent_alerts=2)
    a, b, c = (uuid.UUID(int=n) for n in (1, 2, 3))
    for alert in (a, b, c):
        metrics.show(_snapshot(alert, 1))

    metrics.show(_snapshot(a, 99))  # a late reader of an old alert

    assert _series(metrics) == {str(b), str(c)}


def test_finished_alerts_give_their_places_up_before_sending_ones() -> None:
    metrics = AnalyticsMetrics(recent_alerts=2)
    sending, finished, new = (uuid.UUID(int=n) for n in (1, 2, 3))
    metrics.show(_snapshot(sending, 1))
    metrics.show(_snapshot(finished, 1))
    metrics.count(Applied(new_events=1, alerts={finished: AlertDelta(completed_at=NOW)}))

    metrics.show(_snapshot(new, 1))

    assert _series(metrics) == {str(sending), str(new)}


def test_a_busy_hour_draws_the_live_alerts_not_every_alert_a_reader_touched() -> None:
    metrics = AnalyticsMetrics(recent_alerts=20)
    appeared = 0  # series that came into being: each one a line Grafana draws
    alerts = [uuid.UUID(int=n) for n in range(1, 41)]

    def step(alert: uuid.UUID, readers: int) -> None:
        nonlocal appeared
        before = _series(metrics)
        metrics.show(_snapshot(alert, readers))
        appeared += len(_series(metrics) - before)

    for n, alert in enumerate(alerts):
        step(alert, 1)
        metrics.count(Applied(new_events=1, alerts={alert: AlertDelta(completed_at=NOW)}))
        for old in alerts[:n]:  # late readers of every alert sent before
            step(old, 2)

    assert len(_series(metrics)) == 20
    assert appeared == 40  # once per alert: not again each time a late reader comes


def test_each_channel_has_its_read_rate_until_the_alert_gives_its_place_up() -> None:
    metrics = AnalyticsMetrics(recent_alerts=1)
    alert, newer = uuid.UUID(int=1), uuid.UUID(int=2)
    channels = {
        "kakao": ChannelStatsData(delivered=90, failed=0, readers=99, read_rate=1.1),
        "sms": ChannelStatsData(delivered=10, failed=0, readers=5, read_rate=0.5),
    }
    metrics.show(_snapshot(alert, 104).model_copy(update={"channels": channels}))

    text = generate_latest(metrics.registry).decode()
    assert f'allim_alert_channel_read_rate{{alert_id="{alert}",channel="kakao"}} 1.1' in text
    assert f'allim_alert_channel_read_rate{{alert_id="{alert}",channel="sms"}} 0.5' in text

    metrics.show(_snapshot(newer, 1))
    assert _series(metrics) == {str(newer)}


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
                sms_delivered=6,
                sms_failed=1,
                sms_readers=2,
            ),
            uuid.UUID(int=2): AlertDelta(taps=1, readers=1),
        },
    )
    metrics.count(applied)
    text = generate_latest(metrics.registry).decode()
    for line in (
        'allim_analytics_deliveries_total{category="emergency",channel="kakao",outcome="delivered"}'
        " 84.0",
        'allim_analytics_deliveries_total{category="emergency",channel="kakao",outcome="failed"}'
        " 9.0",
        'allim_analytics_deliveries_total{category="emergency",channel="sms",outcome="delivered"}'
        " 6.0",
        'allim_analytics_deliveries_total{category="emergency",channel="sms",outcome="failed"} 1.0',
        'allim_analytics_channel_readers_total{category="emergency",channel="kakao"} 3.0',
        'allim_analytics_channel_readers_total{category="emergency",channel="sms"} 2.0',
        'allim_analytics_channel_readers_total{category="unknown",channel="kakao"} 1.0',
        'allim_analytics_taps_total{category="emergency"} 7.0',
        'allim_analytics_readers_total{category="emergency",kind="direct"} 3.0',
        'allim_analytics_readers_total{category="emergency",kind="forwarded"} 2.0',
        'allim_analytics_taps_total{category="unknown"} 1.0',
    ):
        assert line in text, line
