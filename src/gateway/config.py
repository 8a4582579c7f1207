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


def load_settings() -> GatewaySettings:
    """Settings from the environment."""
    return GatewaySettings()
