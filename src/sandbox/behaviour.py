"""What the sandbox does, as one immutable value that the admin endpoint swaps while it runs.

Every field has a `sandbox_<name>` setting that gives its value at start-up.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

Profile = Literal["typical", "viral", "quiet", "off"]
LatencyKind = Literal["fixed", "lognormal"]

# the 99th percentile of the standard normal distribution
_Z99 = 2.3263478740408408


class Behaviour(BaseModel):
    """Rate limits, latency, injected faults, recipient codes and the simulator's profile."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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
    inactive_share: float = Field(0.0, ge=0, le=1)
    non_kakao_share: float = Field(0.0, ge=0, le=1)
    temporary_failure_share: float = Field(0.0, ge=0, le=1)
    profile: Profile = "typical"
    time_scale: float = Field(1.0, gt=0)
    seed: int | None = None

    @model_validator(mode="after")
    def _shares_add_up(self) -> Self:
        faults = self.server_error_share + self.timeout_share + self.reset_share
        if faults > 1:
            raise ValueError(
                "server_error_share + timeout_share + reset_share must not exceed 1 "
                f"(they add up to {faults:g})."
            )
        codes = self.inactive_share + self.non_kakao_share
        if codes > 1:
            raise ValueError(
                f"inactive_share + non_kakao_share must not exceed 1 (they add up to {codes:g})."
            )
        if self.latency == "lognormal" and self.latency_p99_ms < self.latency_ms:
            raise ValueError(
                "latency_p99_ms must be at least latency_ms (the median) for lognormal latency."
            )
        return self

    @classmethod
    def from_settings(cls, settings: object) -> Behaviour:
        """The behaviour the `sandbox_<name>` settings describe."""
        return cls.model_validate(
            {name: getattr(settings, f"sandbox_{name}") for name in cls.model_fields}
        )

    def changed(self, patch: dict[str, Any]) -> Behaviour:
        """A copy with `patch` applied and validated as a whole."""
        return Behaviour.model_validate(self.model_dump() | patch)

    def lognormal_sigma(self) -> float:
        """The sigma of the lognormal latency whose median and p99 are configured."""
        if self.latency_ms <= 0 or self.latency_p99_ms <= self.latency_ms:
            return 0.0
        return math.log(self.latency_p99_ms / self.latency_ms) / _Z99
