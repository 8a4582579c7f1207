"""Broadcaster settings: planner, senders, and the provider adapters."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator

from common.kakao_limits import MAX_BUTTON_NAME
from common.sending import SendingSettings


class BroadcasterSettings(SendingSettings):
    """Settings of `allim broadcaster`."""

    broadcaster_provider: Literal["kakao", "webhook"] = Field(
        "kakao", description="Provider adapter the senders post batches through."
    )
    broadcaster_metrics_host: str = Field(
        "127.0.0.1", description="Address the broadcaster's /metrics listens on."
    )
    broadcaster_metrics_port: int = Field(
        9101, ge=0, le=65535, description="Port of the broadcaster's /metrics (0: none)."
    )
    broadcaster_planner_group: str = Field(
        "allim-planner", description="Kafka consumer group of the planners."
    )
    broadcaster_sender_group: str = Field(
        "allim-senders", description="Kafka consumer group of the senders."
    )
    broadcaster_session_timeout_ms: int = Field(
        10_000,
        ge=6_000,
        description="Kafka session timeout: how soon a dead sender's shards move to another.",
    )
    broadcaster_shard_size: int = Field(
        20_000, ge=1, description="Active subscribers per shard (the last one may be smaller)."
    )
    broadcaster_batch_size: int = Field(
        1_000, ge=1, le=1_000, description="Recipients per provider request (provider max 1,000)."
    )
    broadcaster_max_in_flight: int = Field(
        8, ge=1, description="Provider requests in flight at once, per sender process."
    )
    broadcaster_shard_concurrency: int = Field(
        4,
        ge=1,
        description="Shards a sender process works on at once, of each priority (urgent, normal).",
    )
    broadcaster_due_poll_seconds: float = Field(
        1.0, gt=0, description="How often the planner looks for scheduled alerts now due."
    )
    broadcaster_stall_seconds: float = Field(
        300.0,
        gt=0,
        description="A shard of a sending alert not started for this long is published again.",
    )
    broadcaster_control_poll_seconds: float = Field(
        0.5, gt=0, description="How often senders re-read cancelled alerts from the database."
    )
    broadcaster_settle_window_seconds: float = Field(
        0.2,
        ge=0,
        le=5,
        description="Longest a sent batch waits to be settled together with the ones after it.",
    )
    broadcaster_progress_seconds: float = Field(
        2.0, gt=0, description="Least seconds between two progress events of one alert."
    )
    broadcaster_retry_base_seconds: float = Field(
        0.2, gt=0, description="First retry delay of a failed request (doubles, with jitter)."
    )
    broadcaster_retry_cap_seconds: float = Field(
        30.0, gt=0, description="Longest delay between two retries of a request."
    )
    broadcaster_error_threshold: int = Field(
        3,
        ge=1,
        description="Consecutive refused requests (400/401) after which an alert is failed.",
    )
    broadcaster_token_ttl_days: int = Field(
        30, ge=1, description="Days a tracking link stays valid after the alert was created."
    )
    broadcaster_http_timeout_seconds: float = Field(
        10.0, gt=0, description="Timeout of one provider request (connect, read, write, pool)."
    )
    broadcaster_default_button: str = Field(
        "자세히 보기",
        max_length=MAX_BUTTON_NAME,
        description="Name of the button added for the tracked link when an alert has none.",
    )
    kakao_base_url: str = Field(
        "http://127.0.0.1:8100", description="Base URL of the KakaoTalk dealer API."
    )
    kakao_send_path: str = Field(
        "/v1/appkeys/{appkey}/messages", description="Path of the send request."
    )
    kakao_lookup_path: str = Field(
        "/v1/appkeys/{appkey}/messages", description="Path of the results look-up."
    )
    kakao_appkey: str = Field("allim-sandbox", description="Dealer app key (part of the path).")
    kakao_secret: SecretStr = Field(
        SecretStr("change-me"), description="Dealer secret, sent as X-Secret-Key."
    )
    kakao_sender_key: str = Field("allim-channel", description="The channel's sender key.")
    kakao_template_code: str = Field(
        "ALERT_V1", description="AlimTalk template code of alert messages."
    )
    broadcaster_rate_bucket: str = Field(
        "provider",
        min_length=1,
        max_length=50,
        description="Name of the shared rate_buckets rows (one budget per provider contract).",
    )
    broadcaster_rate_lease_seconds: float = Field(
        0.1, gt=0, description="Seconds of budget a sender leases from the shared bucket at once."
    )
    broadcaster_rate_burst_seconds: float = Field(
        0.1, ge=0, description="Seconds of budget an idle bucket saves up for a burst."
    )
    broadcaster_rate_recovery_per_second: float = Field(
        0.1,
        ge=0,
        description="Fraction of the configured rate regained per second after a 429 or 5xx cut.",
    )
    broadcaster_rate_cooldown_seconds: float = Field(
        2.0, ge=0, description="429s and 5xx within this many seconds cut the rate once."
    )
    broadcaster_rate_learn: bool = Field(
        True,
        description="With no messages/s rate configured, learn the dealer's from its 429s "
        "(false: unlimited). Quotas the dealer advertises in RateLimit headers are followed "
        "either way.",
    )
    broadcaster_rate_learn_start: float = Field(
        1000.0,
        gt=0,
        description="Messages/s a learned rate starts from; it doubles every second until the "
        "first 429.",
    )
    broadcaster_rate_learn_increase: float = Field(
        0.02,
        ge=0,
        description="Fraction of the learned rate added per second while requests succeed "
        "(each later 429 cuts it by a quarter).",
    )
    broadcaster_sms_base_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s]+$",
        description="Base URL of the SMS/LMS dealer API (unset: no SMS channel).",
    )
    broadcaster_sms_appkey: str | None = Field(
        None,
        min_length=1,
        description="SMS dealer app key (part of the path); needed with an SMS base URL.",
    )
    broadcaster_sms_secret: SecretStr | None = Field(
        None, description="SMS dealer secret, sent as X-Secret-Key; needed with an SMS base URL."
    )
    broadcaster_sms_send_no: str | None = Field(
        None,
        pattern=r"^[0-9]{1,13}$",
        description="The sender number registered with the SMS dealer (digits only); needed "
        "with an SMS base URL.",
    )
    broadcaster_sms_rate_messages_per_second: float = Field(
        0.0,
        ge=0,
        description="SMS/LMS messages/s all sender processes together may send, a budget of "
        "its own (0: learned, see ALLIM_BROADCASTER_RATE_LEARN).",
    )
    broadcaster_sms_rate_requests_per_second: float = Field(
        0.0,
        ge=0,
        description="SMS dealer requests/s all sender processes together may make (0: unlimited).",
    )
    broadcaster_fallback_unreachable_seconds: float = Field(
        0.0,
        ge=0,
        description="KakaoTalk unreachable (5xx, timeouts, resets) this many seconds: the "
        "batches that wait for it go by SMS/LMS to alerts that fall back (0: never). A batch "
        "KakaoTalk took but could not answer for then reaches its recipients twice.",
    )
    broadcaster_webhook_url: str = Field(
        "http://127.0.0.1:8200/allim",
        description="Endpoint the webhook provider posts batches to.",
    )
    broadcaster_webhook_secret: SecretStr | None = Field(
        None, description="HMAC key that signs webhook requests (unset: unsigned)."
    )

    @model_validator(mode="after")
    def _sms_dealer_complete(self) -> Self:
        if self.broadcaster_sms_base_url is None:
            return self
        needed = {
            "broadcaster_sms_appkey": self.broadcaster_sms_appkey,
            "broadcaster_sms_secret": self.broadcaster_sms_secret,
            "broadcaster_sms_send_no": self.broadcaster_sms_send_no,
        }
        missing = [f"ALLIM_{name.upper()}" for name, value in needed.items() if value is None]
        if missing:
            raise ValueError(
                f"Settings {', '.join(missing)} are missing; the SMS dealer at "
                "ALLIM_BROADCASTER_SMS_BASE_URL needs them."
            )
        return self


def load_settings() -> BroadcasterSettings:
    """Settings from the environment."""
    return BroadcasterSettings()
