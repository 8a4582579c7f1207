"""Token buckets, the quiet-hours clock, the ledger, and behaviour settings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import SecretStr, ValidationError

from sandbox.behaviour import Behaviour, SmsBehaviour
from sandbox.clock import KST, Clock, in_brand_quiet_hours
from sandbox.config import SandboxSettings
from sandbox.ledger import LISTED_DUPLICATES, AlertLedger
from sandbox.ratelimits import RateLimiter, TokenBucket


def test_a_token_bucket_refills_at_its_rate_up_to_its_capacity() -> None:
    bucket = TokenBucket(rate=100, capacity=200, now=0.0)
    assert bucket.wait(200) == 0
    bucket.tokens = 0
    bucket.refill(1.0)
    assert bucket.tokens == pytest.approx(100)
    assert bucket.wait(150) == pytest.approx(0.5)
    bucket.refill(10.0)
    assert bucket.tokens == 200


def test_the_limiter_admits_a_full_batch_even_below_1000_messages_a_second() -> None:
    limiter = RateLimiter(messages_per_second=250, requests_per_second=0, burst_seconds=1, now=0)
    assert limiter.admit(1000, now=0.0, wall=0.0) is None
    throttle = limiter.admit(1000, now=1.0, wall=0.0)
    assert throttle is not None
    assert throttle.retry_after == pytest.approx(3.0)
    assert throttle.headers["Retry-After"] == "3"
    assert limiter.admit(1000, now=4.0, wall=0.0) is None


def test_the_limiter_averages_its_rate_over_time() -> None:
    limiter = RateLimiter(messages_per_second=5000, requests_per_second=0, burst_seconds=1, now=0)
    admitted = sum(
        1000 for step in range(1000) if limiter.admit(1000, now=step * 0.01, wall=0) is None
    )
    # 10 s at 5,000/s, plus the first second's burst
    assert 50_000 <= admitted <= 56_000


def test_unlimited_buckets_never_throttle() -> None:
    limiter = RateLimiter(0, 0, 1, now=0)
    assert all(limiter.admit(1000, now=0, wall=0) is None for _ in range(1000))


def test_throttle_headers_in_http_date_form() -> None:
    limiter = RateLimiter(0, 1, 1, now=0, http_date=True, ratelimit_headers=True)
    assert limiter.admit(1, now=0, wall=0) is None
    wall = datetime(2026, 11, 25, 8, 0, tzinfo=UTC).timestamp()
    throttle = limiter.admit(1, now=0.5, wall=wall)
    assert throttle is not None
    assert throttle.headers["Retry-After"] == "Wed, 25 Nov 2026 08:00:01 GMT"
    assert throttle.headers["RateLimit-Policy"] == '"requests";q=1;w=1'
    assert throttle.headers["RateLimit"] == '"requests";r=0;t=1'


def test_ratelimit_headers_name_each_limit_and_its_unit_only_when_asked() -> None:
    quiet = RateLimiter(5000, 20, 1, now=0)
    assert quiet.admit(1000, now=0, wall=0) is None
    assert quiet.headers() == {}
    throttle = quiet.admit(5000, now=0, wall=0)
    assert throttle is not None
    assert set(throttle.headers) == {"Retry-After"}

    limiter = RateLimiter(5000, 20, 1, now=0, ratelimit_headers=True)
    assert limiter.admit(1000, now=0, wall=0) is None
    assert limiter.headers() == {
        "RateLimit-Policy": '"messages";q=5000;w=1;qu="messages", "requests";q=20;w=1',
        "RateLimit": '"messages";r=4000;t=1, "requests";r=19;t=1',
    }


@pytest.mark.parametrize(
    ("hour", "minute", "quiet"),
    [
        (20, 49, False),
        (20, 50, True),
        (23, 59, True),
        (0, 0, True),
        (7, 59, True),
        (8, 0, False),
        (12, 0, False),
    ],
)
def test_brand_quiet_hours_are_2050_to_0800_kst(hour: int, minute: int, quiet: bool) -> None:
    when = datetime(2026, 11, 25, hour, minute, tzinfo=KST).timestamp()
    assert in_brand_quiet_hours(when) is quiet


def test_the_clock_can_be_set_and_runs_on() -> None:
    wall = [1000.0]
    clock = Clock(lambda: wall[0])
    clock.set_now(datetime(2026, 11, 25, 12, 0, tzinfo=UTC).timestamp())
    wall[0] += 5
    assert clock.datetime() == datetime(2026, 11, 25, 12, 0, 5, tzinfo=UTC)


def test_the_ledger_counts_duplicates_and_lists_the_first_hundred() -> None:
    ledger = AlertLedger("a")
    ledger.accept(["1", "2", "3"], when=10.0)
    ledger.accept(["2", "3", "4"], when=11.0)
    ledger.accept([], when=12.0)
    summary = ledger.summary()
    assert summary["accepted"] == 4
    assert summary["acceptances"] == 6
    assert summary["duplicates"] == 2
    assert summary["duplicate_recipients"] == ["2", "3"]
    assert (summary["first_accepted_at"], summary["last_accepted_at"]) == (10.0, 11.0)
    many = [str(i) for i in range(500)]
    ledger.accept(many, 13.0)
    ledger.accept(many, 14.0)
    assert len(ledger.duplicate_recipients) == LISTED_DUPLICATES
    assert b"".join(ledger.recipient_lines(chunk=7)).decode().split() == list(ledger.counts)


def test_every_behaviour_has_a_setting_with_the_same_default() -> None:
    for name in Behaviour.model_fields:
        field = SandboxSettings.model_fields[f"sandbox_{name}"]
        assert field.description, name
        assert field.default == Behaviour.model_fields[name].default, name
    settings = SandboxSettings(
        sandbox_secret_key=SecretStr("a-real-sandbox-secret"),
        tracking_secret=SecretStr("a-real-tracking-secret-0123456789"),
        sandbox_profile="viral",
        sandbox_messages_per_second=250,
    )
    assert Behaviour.from_settings(settings).profile == "viral"
    assert Behaviour.from_settings(settings).messages_per_second == 250


def test_every_sms_behaviour_has_a_setting_with_the_same_default() -> None:
    for name in SmsBehaviour.model_fields:
        field = SandboxSettings.model_fields[f"sandbox_sms_{name}"]
        assert field.description, name
        assert field.default == SmsBehaviour.model_fields[name].default, name
    settings = SandboxSettings(
        sandbox_secret_key=SecretStr("a-real-sandbox-secret"),
        tracking_secret=SecretStr("a-real-tracking-secret-0123456789"),
        sandbox_sms_unreachable_share=0.25,
    )
    sms = SmsBehaviour.from_settings(settings)
    assert (sms.unreachable_share, sms.read_factor) == (0.25, 0.5)
    assert sms.changed({"read_factor": 0.2}) == SmsBehaviour(
        unreachable_share=0.25, read_factor=0.2
    )
    with pytest.raises(ValidationError, match="must not exceed 1"):
        sms.changed({"server_error_share": 0.6, "reset_share": 0.6})
    with pytest.raises(ValidationError, match="sandbox_sms_send_no"):
        SandboxSettings(
            sandbox_secret_key=SecretStr("a-real-sandbox-secret"),
            tracking_secret=SecretStr("a-real-tracking-secret-0123456789"),
            sandbox_sms_send_no="+82-31-228",
        )


def test_behaviour_shares_must_add_up() -> None:
    with pytest.raises(ValidationError, match="must not exceed 1"):
        Behaviour(server_error_share=0.5, timeout_share=0.3, reset_share=0.3)
    with pytest.raises(ValidationError, match="must not exceed 1"):
        Behaviour().changed({"inactive_share": 0.7, "non_kakao_share": 0.4})
    assert Behaviour(latency="lognormal", latency_ms=10, latency_p99_ms=100).lognormal_sigma() > 0
