"""Every labelled series whose labels are known in advance exists, at zero, from start-up:
`rate()` and `increase()` see the first step after a restart (the first dead letter, the
first broadcast of a category), and the alerting rules that select them can fire."""

from __future__ import annotations

from typing import get_args

import pytest
from prometheus_client import CollectorRegistry

from analytics.metrics import AnalyticsMetrics
from broadcaster.metrics import SHARD_OUTCOMES, BroadcasterMetrics
from broadcaster.pipe import Outcome
from gateway.metrics import GatewayMetrics

CATEGORIES = ("emergency", "public", "promotional")
COUNTED = (*CATEGORIES, "unknown")  # analytics counts deltas of an unknown category too


def series(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """(sample name, labels) -> value of every sample `registry` exposes now."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def expect(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return (name, frozenset(labels.items()))


BROADCASTER = [
    *(
        expect(f"allim_broadcaster_recipients_{kind}_total", category=c, channel=ch)
        for kind in ("sent", "delivered")
        for c in CATEGORIES
        for ch in ("kakao", "sms")
    ),
    *(expect("allim_broadcaster_alerts_planned_total", category=c) for c in CATEGORIES),
    *(
        expect("allim_broadcaster_dead_letters_total", topic=t)
        for t in ("alerts.requested", "broadcast.shards", "broadcast.shards.urgent")
    ),
    *(
        expect("allim_broadcaster_retries_total", cause=c)
        for c in ("transient", "throttled", "accepted-not-found", "lookup", "quiet-hours")
    ),
    *(expect("allim_broadcaster_shards_total", outcome=o) for o in ("done", "held", "cancelled")),
    expect("allim_broadcaster_shard_lag", priority="urgent"),
    expect("allim_broadcaster_shard_lag", priority="normal"),
    expect("allim_broadcaster_shards_held"),
    expect("allim_broadcaster_requests_in_flight"),
]
ANALYTICS = [
    *(
        expect("allim_analytics_records_total", topic=t)
        for t in ("deliveries", "engagement", "alerts.lifecycle")
    ),
    *(
        expect("allim_analytics_events_total", outcome=o)
        for o in ("applied", "duplicate", "skipped", "dead_letter")
    ),
    *(
        expect("allim_analytics_deliveries_total", category=c, channel=ch, outcome=o)
        for c in COUNTED
        for ch in ("kakao", "sms")
        for o in ("delivered", "failed")
    ),
    *(
        expect("allim_analytics_channel_readers_total", category=c, channel=ch)
        for c in COUNTED
        for ch in ("kakao", "sms")
    ),
    *(expect("allim_analytics_taps_total", category=c) for c in COUNTED),
    *(
        expect("allim_analytics_readers_total", category=c, kind=k)
        for c in COUNTED
        for k in ("direct", "forwarded")
    ),
]
GATEWAY = [
    *(
        expect("allim_gateway_taps_total", outcome=o)
        for o in ("recorded", "dropped", "failed", "invalid", "preview")
    ),
    *(
        expect("allim_gateway_alerts_accepted_total", category=c, format=f)
        for c in CATEGORIES
        for f in ("json", "cap")
    ),
]


@pytest.mark.parametrize(
    ("registry", "expected"),
    [
        pytest.param(lambda: BroadcasterMetrics().registry, BROADCASTER, id="broadcaster"),
        pytest.param(lambda: AnalyticsMetrics().registry, ANALYTICS, id="analytics"),
        pytest.param(lambda: GatewayMetrics().registry, GATEWAY, id="gateway"),
    ],
)
def test_known_series_exist_at_zero_from_start_up(
    registry: object, expected: list[tuple[str, frozenset[tuple[str, str]]]]
) -> None:
    assert callable(registry)
    found = series(registry())
    missing = [(name, dict(labels)) for name, labels in expected if (name, labels) not in found]
    assert not missing, f"Series missing at start-up: {missing}"
    assert all(found[key] == 0 for key in expected)


def test_every_shard_outcome_has_its_series() -> None:
    assert set(SHARD_OUTCOMES) == set(get_args(Outcome))
