"""The broadcaster's Prometheus metrics, on one registry per process."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from common import topics
from common.metrics import CATEGORIES, CHANNELS, SECONDS_BUCKETS, initialise

# the label values known in advance, whose series exist from start-up (see common.metrics)
RETRY_CAUSES = (
    "transient",
    "throttled",
    "accepted-not-found",
    "lookup",
    "quiet-hours",
    "recipient",
)
SHARD_OUTCOMES = (
    "done",
    "cancelled",
    "skipped",
    "stopped",
    "busy",
    "held",
    "unsettled",
    "conflict",
)
PRIORITIES = ("urgent", "normal")
# the topics whose records the planner and the senders may dead-letter
DEAD_LETTER_SOURCES = (
    topics.ALERTS_REQUESTED,
    topics.BROADCAST_SHARDS,
    topics.BROADCAST_SHARDS_URGENT,
)


class RateWindow:
    """Recipients sent in the last `window` seconds, as a per-second rate.

    It holds the sends of the last window only, whether or not anyone reads the rate: a
    sender nobody scrapes does not keep a record of every request of its life.
    """

    def __init__(self, window: float = 5.0) -> None:
        self._window = window
        self._events: deque[tuple[float, int]] = deque()
        self._total = 0

    def __len__(self) -> int:
        """How many sends it holds."""
        return len(self._events)

    def add(self, count: int, now: float | None = None) -> None:
        """Count `count` recipients sent at `now`."""
        now = time.monotonic() if now is None else now
        self._events.append((now, count))
        self._total += count
        self._forget(now)

    def rate(self, now: float | None = None) -> float:
        """Recipients per second over the window ending at `now`."""
        self._forget(time.monotonic() if now is None else now)
        return self._total / self._window

    def _forget(self, now: float) -> None:
        while self._events and self._events[0][0] < now - self._window:
            self._total -= self._events.popleft()[1]


@dataclass
class BroadcasterMetrics:
    """Every metric the broadcaster exports at `/metrics`."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.window = RateWindow()
        self.sent = Counter(
            "allim_broadcaster_recipients_sent_total",
            "Recipients posted to the provider, by category and channel",
            ["category", "channel"],
            registry=r,
        )
        self.delivered = Counter(
            "allim_broadcaster_recipients_delivered_total",
            "Recipients the provider accepted, by category and channel",
            ["category", "channel"],
            registry=r,
        )
        self.failed = Counter(
            "allim_broadcaster_recipients_failed_total",
            "Recipients that did not get the alert or must be retried, by category, channel and"
            " reason",
            ["category", "channel", "reason"],
            registry=r,
        )
        self.batch_latency = Histogram(
            "allim_broadcaster_batch_seconds",
            "Provider request latency of one batch",
            registry=r,
            buckets=SECONDS_BUCKETS,
        )
        self.send_rate = Gauge(
            "allim_broadcaster_send_rate",
            "Recipients posted per second over the last 5 s",
            registry=r,
        )
        self.send_rate.set_function(self.window.rate)
        self.in_flight = Gauge(
            "allim_broadcaster_requests_in_flight", "Provider requests in flight", registry=r
        )
        self.retries = Counter(
            "allim_broadcaster_retries_total",
            "Provider requests retried, by cause",
            ["cause"],
            registry=r,
        )
        self.throttled = Counter(
            "allim_broadcaster_throttled_total", "Provider answers 429", registry=r
        )
        self.shard_lag = Gauge(
            "allim_broadcaster_shard_lag",
            "Shards received and not yet finished by this process, by priority; neither those"
            " held for quiet hours nor those of cancelled alerts",
            ["priority"],
            registry=r,
        )
        self.shards_held = Gauge(
            "allim_broadcaster_shards_held",
            "Shards this process holds until quiet hours end",
            registry=r,
        )
        self.fallbacks = Counter(
            "allim_broadcaster_fallback_recipients_total",
            "Recipients KakaoTalk refused with a fallback code, sent again by SMS/LMS",
            registry=r,
        )
        self.alerts_late = Gauge(
            "allim_broadcaster_alerts_late",
            "Sending alerts whose estimate misses their deliver_within (the planner's count)",
            registry=r,
        )
        self.shards_paused = Gauge(
            "allim_broadcaster_shards_paused",
            "Shards this process holds because an operator paused their alert",
            registry=r,
        )
        self.shards = Counter(
            "allim_broadcaster_shards_total",
            "Shards finished by this process, by outcome",
            ["outcome"],
            registry=r,
        )
        self.planned = Counter(
            "allim_broadcaster_alerts_planned_total",
            "Alerts planned into shards, by category",
            ["category"],
            registry=r,
        )
        self.dead_letters = Counter(
            "allim_broadcaster_dead_letters_total",
            "Records sent to the dead-letter topic, by source topic",
            ["topic"],
            registry=r,
        )
        for counter in (self.sent, self.delivered):
            initialise(counter, CATEGORIES, CHANNELS)
        initialise(self.planned, CATEGORIES)
        initialise(self.retries, RETRY_CAUSES)
        initialise(self.shards, SHARD_OUTCOMES)
        initialise(self.shard_lag, PRIORITIES)
        initialise(self.dead_letters, DEAD_LETTER_SOURCES)
