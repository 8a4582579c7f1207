"""Gateway settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from common.messages import Category
from common.sending import SendingSettings

DEFAULT_CAP_AREAS = Path(__file__).with_name("cap_areas.csv")


class GatewaySettings(SendingSettings):
    """Settings of `allim gateway`."""

    gateway_host: str = Field("127.0.0.1", description="Address the gateway listens on.")
    gateway_port: int = Field(8000, ge=1, le=65535, description="Port the gateway listens on.")
    gateway_workers: int = Field(1, ge=1, description="Uvicorn worker processes.")
    gateway_metrics_token: SecretStr | None = Field(
        None,
        min_length=16,
        description=(
            "Bearer token (16 characters or more) a scrape of the gateway's /metrics must "
            "carry; unset, /metrics answers loopback clients only."
        ),
    )
    gateway_token_ttl_days: int = Field(
        30, ge=1, description="Days a tracking link stays valid after the alert is sent."
    )
    gateway_reader_cookie: str = Field(
        "allim_reader", description="Name of the cookie that identifies a reader."
    )
    gateway_outbox_poll_seconds: float = Field(
        0.2, gt=0, description="How often the outbox relay looks for unsent rows."
    )
    gateway_outbox_linger_seconds: float = Field(
        0.005,
        ge=0,
        le=1,
        description="After a new row, how long the relay waits to gather more into one batch.",
    )
    gateway_outbox_retention_hours: float = Field(
        24.0, gt=0, description="Hours a published outbox row is kept before it is deleted."
    )
    gateway_outbox_batch: int = Field(
        500, ge=1, le=10_000, description="Outbox rows the relay claims and publishes at once."
    )
    gateway_sse_poll_seconds: float = Field(
        0.5, gt=0, description="How often an alert's event stream re-reads the alert."
    )
    gateway_page_limit: int = Field(
        50, ge=1, le=1000, description="Alerts a list page holds when the caller sets no limit."
    )
    gateway_cap_area_map: Path | None = Field(
        None,
        description=(
            "CSV (columns `area,district`) or JSON object (`{area: district}`) that maps a CAP "
            "areaDesc, or a geocode written `valueName=value`, to a subscriber district; "
            "unset, the built-in table of Suwon's districts (`src/gateway/cap_areas.csv`)."
        ),
    )
    gateway_send_at_max_past_minutes: float = Field(
        60,
        ge=0,
        description=(
            "How far in the past an alert's `send_at` may lie (clocks drift, a request "
            "waits); one further back is refused with a 422 rather than sent at once."
        ),
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
    gateway_approval_required: bool = Field(
        True,
        description=(
            "An alert created by a person waits in `pending_approval` until an approver who "
            "is not its author approves it; off, alerts are sent as soon as they are created."
        ),
    )
    gateway_approval_exempt_categories: list[Category] = Field(
        [],
        description='Categories sent without approval, as JSON (`["emergency"]`).',
    )
    gateway_machine_feeds_skip_approval: bool = Field(
        False,
        description=(
            "Alerts from a key marked as a machine feed (a CAP source) skip approval; the "
            "skip is recorded on the alert and in the audit log."
        ),
    )
    gateway_approval_sweep_seconds: float = Field(
        5.0,
        gt=0,
        description="How often alerts whose expiry passed while they waited are marked expired.",
    )
    gateway_test_tag: str = Field(
        "tester",
        min_length=1,
        max_length=64,
        description="Subscribers with this tag receive an alert's test sends.",
    )
    gateway_test_max_recipients: int = Field(
        100,
        ge=1,
        le=10_000,
        description="A test send to more subscribers than this is refused (a mis-tagged list).",
    )
    gateway_fallback_categories: list[Category] = Field(
        ["emergency", "public"],
        description="Categories whose alerts go by SMS/LMS to those KakaoTalk refuses, as "
        "JSON; an alert may say otherwise (`fallback.enabled`).",
    )
    gateway_fallback_codes: list[int] = Field(
        [3018, 3019, 3020],
        description="KakaoTalk result codes whose recipients get the alert by SMS/LMS.",
    )
    gateway_sms_opt_out_number: str = Field(
        "080-000-0000",
        min_length=1,
        max_length=20,
        description="The free opt-out number a promotional SMS/LMS ends with (set your own).",
    )
    gateway_session_cookie: str = Field(
        "allim_session", min_length=1, description="Name of the signed-in session's cookie."
    )
    gateway_session_hours: float = Field(
        8.0, gt=0, le=24 * 30, description="Hours a sign-in lasts at most."
    )
    gateway_session_idle_minutes: float = Field(
        30.0, gt=0, description="A session unused this long ends."
    )
    gateway_signin_slow_after: int = Field(
        3,
        ge=1,
        description=(
            "Wrong passwords in a row after which each further attempt must wait, twice as "
            "long each time."
        ),
    )
    gateway_signin_slow_seconds: float = Field(
        2.0, gt=0, description="The first wait after `SLOW_AFTER` wrong passwords."
    )
    gateway_signin_lock_after: int = Field(
        8, ge=1, description="Wrong passwords in a row that lock the account."
    )
    gateway_signin_lock_minutes: float = Field(
        15.0, gt=0, description="How long a locked account stays locked."
    )


def load_settings() -> GatewaySettings:
    """Settings from the environment."""
    return GatewaySettings()
