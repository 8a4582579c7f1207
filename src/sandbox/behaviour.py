"""What each dealer the sandbox plays does, as immutable values the admin endpoints swap
while it runs: `Behaviour` for the KakaoTalk dealer, `SmsBehaviour` for the SMS dealer.

Every field has a setting that gives its value at start-up: `sandbox_<name>` for the
KakaoTalk dealer, `sandbox_sms_<name>` for the SMS dealer.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

Profile = Literal["typical", "viral", "quiet", "off"]
LatencyKind = Literal["fixed", "lognormal"]

# the 99th percentile of the standard normal distribution
_Z99 = 2.3263478740408408


class DealerBehaviour(BaseModel):
    """What every dealer does alike: rate limits, latency, injected faults, temporary
    failures per recipient, and the seed of its random draws."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # the prefix of the settings that give the fields' values at start-up
    setting_prefix: ClassVar[str] = "sandbox_"

    messages_per_second: float = Field(0.0, ge=0)
    requests_per_second: float = Field(0.0, ge=0)
    burst_seconds: float = Field(1.0, gt=0)
    retry_after_http_date: bool = False
    ratelimit_headers: bool = False
    latency: LatencyKind = "fixed"
    latency_ms: float = Field(0.0, ge=0)
    latency_p99_ms: float = Field(0.0, ge=0)
    server_error_share: float = Field(0.0, ge=0, le=1)
    timeout_share: float = Field(0.0, ge=0, le=1)
    reset_share: float = Field(0.0, ge=0, le=1)
    fault_after_accept_share: float = Field(0.5, ge=0, le=1)
    hang_seconds: float = Field(60.0, ge=0)
    temporary_failure_share: float = Field(0.0, ge=0, le=1)
    seed: int | None = None

    @model_validator(mode="after")
    def _faults_add_up(self) -> Self:
        faults = self.server_error_share + self.timeout_share + self.reset_share
        if faults > 1:
            raise ValueError(
                "server_error_share + timeout_share + reset_share must not exceed 1 "
                f"(they add up to {faults:g})."
            )
        if self.latency == "lognormal" and self.latency_p99_ms < self.latency_ms:
            raise ValueError(
                "latency_p99_ms must be at least latency_ms (the median) for lognormal latency."
            )
        return self

    @classmethod
    def from_settings(cls, settings: object) -> Self:
        """The behaviour the settings describe."""
        prefix = cls.setting_prefix
        return cls.model_validate(
            {name: getattr(settings, f"{prefix}{name}") for name in cls.model_fields}
        )

    def changed(self, patch: dict[str, Any]) -> Self:
        """A copy with `patch` applied and validated as a whole."""
        return self.model_validate(self.model_dump() | patch)

    def lognormal_sigma(self) -> float:
        """The sigma of the lognormal latency whose median and p99 are configured."""
        if self.latency_ms <= 0 or self.latency_p99_ms <= self.latency_ms:
            return 0.0
        return math.log(self.latency_p99_ms / self.latency_ms) / _Z99


class Behaviour(DealerBehaviour):
    """The KakaoTalk dealer: its recipient codes and the simulator's profile besides."""

    inactive_share: float = Field(0.0, ge=0, le=1)
    non_kakao_share: float = Field(0.0, ge=0, le=1)
    profile: Profile = "typical"
    time_scale: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _codes_add_up(self) -> Self:
        codes = self.inactive_share + self.non_kakao_share
        if codes > 1:
            raise ValueError(
                f"inactive_share + non_kakao_share must not exceed 1 (they add up to {codes:g})."
            )
        return self


class SmsBehaviour(DealerBehaviour):
    """The SMS dealer: the share of numbers that cannot receive, and how much less often
    people tap a link they got by SMS or LMS than one they got by KakaoTalk."""

    setting_prefix: ClassVar[str] = "sandbox_sms_"

    unreachable_share: float = Field(0.0, ge=0, le=1)
    read_factor: float = Field(0.5, ge=0, le=1)
