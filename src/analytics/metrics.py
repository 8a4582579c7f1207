"""The analytics consumer's Prometheus metrics, on one registry per process.

Counters grow with every applied poll. Per-alert gauges exist only for the
`recent_alerts` most recently changed alerts: older alerts' labels are removed, so the
number of series stays bounded however many alerts are sent.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from analytics.store import UNKNOWN_CATEGORY, Applied
from common import topics
from common.messages import AlertStatsData
from common.metrics import CATEGORIES, SECONDS_BUCKETS, initialise

# the label values known in advance, whose series exist from start-up (see common.metrics)
CONSUMED_TOPICS = (topics.DELIVERIES, topics.ENGAGEMENT, topics.ALERT_EVENTS)
EVENT_OUTCOMES = ("applied", "duplicate", "skipped", "dead_letter")
COUNTED_CATEGORIES = (*CATEGORIES, UNKNOWN_CATEGORY)


@dataclass
class AnalyticsMetrics:
    """Every metric `allim analytics` exports."""

    recent_alerts: int = 20
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    _shown: OrderedDict[str, None] = field(default_factory=OrderedDict, init=False)

    def __post_init__(self) -> None:
        r = self.registry
        self.records = Counter(
            "allim_analytics_records_total",
            "Kafka records consumed by topic",
            ["topic"],
            registry=r,
        )
        self.events = Counter(
            "allim_analytics_events_total",
            "Consumed events by outcome (applied, duplicate, skipped, dead_letter)",
            ["outcome"],
            registry=r,
        )
        self.deliveries = Counter(
            "allim_analytics_deliveries_total",
            "Recipients whose delivery was settled, by category and outcome",
            ["category", "outcome"],
            registry=r,
        )
        self.taps = Counter(
            "allim_analytics_taps_total",
            "Taps on tracked links by category",
            ["category"],
            registry=r,
        )
        self.readers = Counter(
            "allim_analytics_readers_total",
            "New distinct readers by category and kind (direct or forwarded)",
            ["category", "kind"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "allim_analytics_batch_seconds",
            "Time to apply one poll of records in the database",
            registry=r,
            buckets=SECONDS_BUCKETS,
        )
        self.batch_records = Histogram(
            "allim_analytics_batch_records",
            "Records in one applied poll",
            registry=r,
            buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 25000),
        )
        self.snapshots = Counter(
            "allim_analytics_snapshots_total", "Snapshots published on alerts.stats", registry=r
        )
        self.read_rate = Gauge(
            "allim_alert_read_rate",
            "Readers / delivered of a recent alert; absent before its first delivery",
            ["alert_id"],
            registry=r,
        )
        self.alert_readers = Gauge(
            "allim_alert_readers", "Distinct readers of a recent alert", ["alert_id"], registry=r
        )
        self.alert_delivered = Gauge(
            "allim_alert_delivered",
            "Recipients a recent alert was delivered to",
            ["alert_id"],
            registry=r,
        )
        initialise(self.records, CONSUMED_TOPICS)
        initialise(self.events, EVENT_OUTCOMES)
        initialise(self.deliveries, COUNTED_CATEGORIES, ("delivered", "failed"))
        initialise(self.taps, COUNTED_CATEGORIES)
        initialise(self.readers, COUNTED_CATEGORIES, ("direct", "forwarded"))

    def count(self, applied: Applied) -> None:
        """Add one applied poll's deltas to the counters."""
        for delta in applied.alerts.values():
            category = delta.category or UNKNOWN_CATEGORY
            if delta.delivered:
                self.deliveries.labels(category, "delivered").inc(delta.delivered)
            if delta.failed:
                self.deliveries.labels(category, "failed").inc(delta.failed)
            if delta.taps:
                self.taps.labels(category).inc(delta.taps)
            direct = delta.readers - delta.forwarded_readers
            if direct:
                self.readers.labels(category, "direct").inc(direct)
            if delta.forwarded_readers:
                self.readers.labels(category, "forwarded").inc(delta.forwarded_readers)

    def show(self, snapshot: AlertStatsData) -> None:
        """Set the gauges of one alert, dropping the least recently changed beyond the limit."""
        alert = str(snapshot.alert_id)
        if snapshot.read_rate is not None:  # none before the first delivery
            self.read_rate.labels(alert).set(snapshot.read_rate)
        self.alert_readers.labels(alert).set(snapshot.readers)
        self.alert_delivered.labels(alert).set(snapshot.delivered)
        self._shown[alert] = None
        self._shown.move_to_end(alert)
        while len(self._shown) > self.recent_alerts:
            old, _ = self._shown.popitem(last=False)
            for gauge in (self.read_rate, self.alert_readers, self.alert_delivered):
                gauge.remove(old)

    def shown(self) -> list[str]:
        """Alert ids that have gauges, least recently changed first."""
        return list(self._shown)
