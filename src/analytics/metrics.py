"""The analytics consumer's Prometheus metrics, on one registry per process.

Counters grow with every applied poll; their known label combinations exist from start-up.
Per-alert gauges exist only for the `recent_alerts` alerts most recently seen for the first
time: an alert takes a place when its first snapshot is shown and keeps it (a later change
does not move it up), and when a newer alert needs the place the oldest alert whose
broadcast has finished gives it up first. An alert that gave its place up is not shown
again (the last `RETIRED` such alerts are remembered), so the alerts that ever had a series
over a time range are the live ones and those that started within it, not every old alert
that a late reader touched.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from analytics.store import UNKNOWN_CATEGORY, Applied
from common import topics
from common.messages import AlertStatsData
from common.metrics import CATEGORIES, CHANNELS, SECONDS_BUCKETS, initialise
from reports.figures import Counts

# the label values known in advance, whose series exist from start-up (see common.metrics)
CONSUMED_TOPICS = (topics.DELIVERIES, topics.ENGAGEMENT, topics.ALERT_EVENTS)
EVENT_OUTCOMES = ("applied", "duplicate", "skipped", "dead_letter")
COUNTED_CATEGORIES = (*CATEGORIES, UNKNOWN_CATEGORY)
# alerts whose gauges were removed, remembered so that they do not come back
RETIRED = 10_000


@dataclass
class AnalyticsMetrics:
    """Every metric `allim analytics` exports."""

    recent_alerts: int = 20
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    retired_limit: int = RETIRED
    # alert id -> its broadcast has finished; in the order the alerts were first shown
    _shown: OrderedDict[str, bool] = field(default_factory=OrderedDict, init=False)
    _retired: OrderedDict[str, None] = field(default_factory=OrderedDict, init=False)

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
            "Recipients whose delivery was settled, by category, channel and outcome",
            ["category", "channel", "outcome"],
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
        self.channel_readers = Counter(
            "allim_analytics_channel_readers_total",
            "New distinct readers by category and the channel that sent the link they first tapped",
            ["category", "channel"],
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
        self.channel_read_rate = Gauge(
            "allim_alert_channel_read_rate",
            "Readers / delivered of a recent alert by the channel that sent the link; absent"
            " before the channel's first delivery",
            ["alert_id", "channel"],
            registry=r,
        )
        initialise(self.records, CONSUMED_TOPICS)
        initialise(self.events, EVENT_OUTCOMES)
        initialise(self.deliveries, COUNTED_CATEGORIES, CHANNELS, ("delivered", "failed"))
        initialise(self.channel_readers, COUNTED_CATEGORIES, CHANNELS)
        initialise(self.taps, COUNTED_CATEGORIES)
        initialise(self.readers, COUNTED_CATEGORIES, ("direct", "forwarded"))

    def count(self, applied: Applied) -> None:
        """Add one applied poll's deltas to the counters; note the alerts that finished."""
        for alert_id, delta in applied.alerts.items():
            if delta.completed_at is not None and str(alert_id) in self._shown:
                self._shown[str(alert_id)] = True
            category = delta.category or UNKNOWN_CATEGORY
            for channel, part in Counts.of(delta).by_channel().items():
                if part.delivered:
                    self.deliveries.labels(category, channel, "delivered").inc(part.delivered)
                if part.failed:
                    self.deliveries.labels(category, channel, "failed").inc(part.failed)
                if part.readers:
                    self.channel_readers.labels(category, channel).inc(part.readers)
            if delta.taps:
                self.taps.labels(category).inc(delta.taps)
            direct = delta.readers - delta.forwarded_readers
            if direct:
                self.readers.labels(category, "direct").inc(direct)
            if delta.forwarded_readers:
                self.readers.labels(category, "forwarded").inc(delta.forwarded_readers)

    def show(self, snapshot: AlertStatsData) -> None:
        """Set the gauges of one alert, unless it gave its place up; keep `recent_alerts`."""
        alert = str(snapshot.alert_id)
        if alert in self._retired:
            return
        if alert not in self._shown:
            self._shown[alert] = False
            self._make_room()
        if snapshot.read_rate is not None:  # none before the first delivery
            self.read_rate.labels(alert).set(snapshot.read_rate)
        self.alert_readers.labels(alert).set(snapshot.readers)
        self.alert_delivered.labels(alert).set(snapshot.delivered)
        for channel, part in snapshot.channels.items():
            if part.read_rate is not None:
                self.channel_read_rate.labels(alert, channel).set(part.read_rate)

    def _make_room(self) -> None:
        """Remove the gauges of the oldest finished alerts, or else the oldest, beyond the limit."""
        while len(self._shown) > self.recent_alerts:
            finished = [alert for alert, done in self._shown.items() if done]
            old = finished[0] if finished else next(iter(self._shown))
            del self._shown[old]
            for gauge in (self.read_rate, self.alert_readers, self.alert_delivered):
                with contextlib.suppress(KeyError):  # no read rate before a delivery
                    gauge.remove(old)
            for channel in CHANNELS:
                with contextlib.suppress(KeyError):
                    self.channel_read_rate.remove(old, channel)
            self._retired[old] = None
            while len(self._retired) > self.retired_limit:
                self._retired.popitem(last=False)

    def shown(self) -> list[str]:
        """Alert ids that have gauges, in the order they were first shown."""
        return list(self._shown)
