"""Analytics settings."""

from __future__ import annotations

from pydantic import Field

from common.config import CommonSettings


class AnalyticsSettings(CommonSettings):
    """Settings of `allim analytics`."""

    analytics_group_id: str = Field(
        "allim-analytics", description="Kafka consumer group of the analytics consumers."
    )
    analytics_consumer_name: str = Field(
        "analytics",
        max_length=32,
        description="Name under which applied event ids are kept in `processed_events`.",
    )
    analytics_max_batch: int = Field(
        50_000,
        ge=1,
        description="Most Kafka records applied in one database transaction (a backlog fills "
        "them; a steady stream makes small ones).",
    )
    analytics_poll_seconds: float = Field(
        0.2, gt=0, description="Longest wait for records before an empty poll returns."
    )
    analytics_snapshot_seconds: float = Field(
        1.0,
        gt=0,
        le=2.0,
        description="How often changed alerts are published on `alerts.stats` and in the gauges.",
    )
    analytics_recent_alerts: int = Field(
        20,
        ge=1,
        description="How many of the newest alerts keep per-alert Prometheus gauges.",
    )
    analytics_dedupe_hours: int = Field(
        8 * 24,
        ge=1,
        description=(
            "Hours an applied event id is remembered; keep it above the retention of the "
            "consumed topics (Kafka's default is 7 days), since only they can redeliver it."
        ),
    )
    analytics_metrics_host: str = Field(
        "127.0.0.1", description="Address the Prometheus metrics endpoint listens on."
    )
    analytics_metrics_port: int = Field(
        9102, ge=1, le=65535, description="Port of the Prometheus metrics endpoint."
    )


def load_settings() -> AnalyticsSettings:
    """Settings from the environment."""
    return AnalyticsSettings()
