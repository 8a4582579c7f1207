"""Gateway settings."""

from __future__ import annotations

from pydantic import Field

from common.config import CommonSettings


class GatewaySettings(CommonSettings):
    """Settings of `allim gateway`."""

    gateway_host: str = Field("127.0.0.1", description="Address the gateway listens on.")
    gateway_port: int = Field(8000, ge=1, le=65535, description="Port the gateway listens on.")
    gateway_workers: int = Field(1, ge=1, description="Uvicorn worker processes.")
    gateway_token_ttl_days: int = Field(
        30, ge=1, description="Days a tracking link stays valid after the alert is sent."
    )
    gateway_reader_cookie: str = Field(
        "allim_reader", description="Name of the cookie that identifies a reader."
    )
    gateway_outbox_poll_seconds: float = Field(
        0.2, gt=0, description="How often the outbox relay looks for unsent rows."
    )
    gateway_landing_cache_size: int = Field(
        1024, ge=1, description="Alerts whose landing-page content is kept in memory."
    )
    gateway_landing_cache_seconds: float = Field(
        30, gt=0, description="Seconds a cached landing page is served before it is re-read."
    )
    gateway_tap_max_pending: int = Field(
        10_000, ge=1, description="Tap events in flight to Kafka before more taps are dropped."
    )


def load_settings() -> GatewaySettings:
    """Settings from the environment."""
    return GatewaySettings()
