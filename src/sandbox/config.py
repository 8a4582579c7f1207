"""Settings of `allim sandbox`; the behaviour settings are only where it starts, the admin
endpoints (`PATCH /_sandbox/config`, `PATCH /_sandbox/sms/config`) change them while it runs."""

from __future__ import annotations

from pydantic import Field, SecretStr

from common.config import CommonSettings
from sandbox.behaviour import LatencyKind, Profile


class SandboxSettings(CommonSettings):
    """Settings of the sandbox provider and recipient simulator."""

    sandbox_host: str = Field("127.0.0.1", description="Address the sandbox listens on.")
    sandbox_port: int = Field(8100, ge=0, le=65535, description="Port the sandbox listens on.")
    sandbox_appkey: str = Field(
        "allim-sandbox", min_length=1, description="The appkey the sandbox serves in its paths."
    )
    sandbox_secret_key: SecretStr = Field(
        SecretStr("change-me"), description="The X-Secret-Key every send and look-up must carry."
    )
    sandbox_idempotency_seconds: float = Field(
        600.0, gt=0, description="How long an X-Idempotency-Key is remembered (answer -1005)."
    )
    sandbox_stats_window_seconds: int = Field(
        3600, ge=1, description="Seconds of the per-second series of accepted recipients kept."
    )
    sandbox_tap_concurrency: int = Field(
        8, ge=1, description="Taps on tracked links the simulator makes at the same time."
    )
    sandbox_tap_timeout_seconds: float = Field(
        10.0, gt=0, description="Timeout of one simulated tap on a tracked link."
    )
    sandbox_max_pending_taps: int = Field(
        1_000_000, ge=1, description="Scheduled taps kept at most; more are dropped and counted."
    )
    # where the behaviour starts (sandbox.behaviour.Behaviour)
    sandbox_messages_per_second: float = Field(
        0.0, ge=0, description="Messages (recipients) per second accepted; 0 is unlimited."
    )
    sandbox_requests_per_second: float = Field(
        0.0, ge=0, description="Send requests per second accepted; 0 is unlimited."
    )
    sandbox_burst_seconds: float = Field(
        1.0, gt=0, description="Token-bucket depth, in seconds of the rate limits."
    )
    sandbox_retry_after_http_date: bool = Field(
        False, description="Answer 429 with Retry-After as an HTTP-date instead of seconds."
    )
    sandbox_ratelimit_headers: bool = Field(
        False,
        description="Send the IETF RateLimit-Policy and RateLimit headers on every answer "
        '(messages in unit "messages", requests in unit "request").',
    )
    sandbox_latency: LatencyKind = Field(
        "fixed", description="Latency distribution of a send: fixed or lognormal."
    )
    sandbox_latency_ms: float = Field(
        0.0, ge=0, description="Fixed latency, or the median of the lognormal latency (ms)."
    )
    sandbox_latency_p99_ms: float = Field(
        0.0, ge=0, description="99th percentile of the lognormal latency (ms)."
    )
    sandbox_server_error_share: float = Field(
        0.0, ge=0, le=1, description="Share of sends answered 500/502/503/504."
    )
    sandbox_timeout_share: float = Field(
        0.0, ge=0, le=1, description="Share of sends that hang for sandbox_hang_seconds."
    )
    sandbox_reset_share: float = Field(
        0.0, ge=0, le=1, description="Share of sends whose connection is reset."
    )
    sandbox_fault_after_accept_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of timeouts and resets that happen after the batch was accepted.",
    )
    sandbox_hang_seconds: float = Field(
        60.0, ge=0, description="How long a timed-out send hangs before it answers 504."
    )
    sandbox_inactive_share: float = Field(
        0.0, ge=0, le=1, description="Share of recipients answered 3018 (stable per number)."
    )
    sandbox_non_kakao_share: float = Field(
        0.0, ge=0, le=1, description="Share of recipients answered 3019 (stable per number)."
    )
    sandbox_temporary_failure_share: float = Field(
        0.0, ge=0, le=1, description="Share of recipients answered 5000, drawn per attempt."
    )
    sandbox_profile: Profile = Field(
        "typical", description="Recipient simulator profile: typical, viral, quiet or off."
    )
    sandbox_time_scale: float = Field(
        1.0, gt=0, description="How many times faster than real time simulated people read."
    )
    sandbox_seed: int | None = Field(
        None, description="Seed of the sandbox's random draws; set it for repeatable runs."
    )
    # the SMS dealer (docs/provider-api.md, "SMS and LMS"): who sends, and where its
    # behaviour starts (sandbox.behaviour.SmsBehaviour)
    sandbox_sms_send_no: str = Field(
        "15880000",
        pattern=r"^[0-9]{1,13}$",
        description="The one sender number (sendNo) the SMS dealer has registered.",
    )
    sandbox_sms_messages_per_second: float = Field(
        0.0, ge=0, description="SMS/LMS messages (recipients) per second accepted; 0 is unlimited."
    )
    sandbox_sms_requests_per_second: float = Field(
        0.0, ge=0, description="SMS/LMS send requests per second accepted; 0 is unlimited."
    )
    sandbox_sms_burst_seconds: float = Field(
        1.0, gt=0, description="Token-bucket depth of the SMS rate limits, in seconds of them."
    )
    sandbox_sms_retry_after_http_date: bool = Field(
        False, description="Answer an SMS 429 with Retry-After as an HTTP-date instead of seconds."
    )
    sandbox_sms_ratelimit_headers: bool = Field(
        False, description="Send RateLimit-Policy and RateLimit on every SMS dealer answer."
    )
    sandbox_sms_latency: LatencyKind = Field(
        "fixed", description="Latency distribution of an SMS send: fixed or lognormal."
    )
    sandbox_sms_latency_ms: float = Field(
        0.0, ge=0, description="Fixed latency, or the median of the lognormal one, of an SMS send."
    )
    sandbox_sms_latency_p99_ms: float = Field(
        0.0, ge=0, description="99th percentile of the lognormal latency of an SMS send (ms)."
    )
    sandbox_sms_server_error_share: float = Field(
        0.0, ge=0, le=1, description="Share of SMS sends answered 500/502/503/504."
    )
    sandbox_sms_timeout_share: float = Field(
        0.0, ge=0, le=1, description="Share of SMS sends that hang for sandbox_sms_hang_seconds."
    )
    sandbox_sms_reset_share: float = Field(
        0.0, ge=0, le=1, description="Share of SMS sends whose connection is reset."
    )
    sandbox_sms_fault_after_accept_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of SMS timeouts and resets that happen after the batch was accepted.",
    )
    sandbox_sms_hang_seconds: float = Field(
        60.0, ge=0, description="How long a timed-out SMS send hangs before it answers 504."
    )
    sandbox_sms_unreachable_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of numbers answered -8012, cannot receive (stable per number).",
    )
    sandbox_sms_temporary_failure_share: float = Field(
        0.0, ge=0, le=1, description="Share of SMS recipients answered -9997, drawn per attempt."
    )
    sandbox_sms_read_factor: float = Field(
        0.5,
        ge=0,
        le=1,
        description="How often people tap a link they got by SMS/LMS, relative to KakaoTalk.",
    )
    sandbox_sms_seed: int | None = Field(
        None, description="Seed of the SMS dealer's random draws; set it for repeatable runs."
    )


def load_settings() -> SandboxSettings:
    """Settings from the environment."""
    return SandboxSettings()
