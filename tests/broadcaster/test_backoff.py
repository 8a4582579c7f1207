"""Retry timing: capped exponential backoff with full jitter, and Retry-After in both forms."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from broadcaster.backoff import backoff_delay, parse_retry_after


def test_backoff_ceiling_doubles_then_caps() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(1, 0.2), (2, 0.4), (3, 0.8), (6, 6.4), (8, 25.6), (9, 30.0)]:
        delays = [backoff_delay(attempt, base=0.2, cap=30.0, rng=rng) for _ in range(2000)]
        assert all(0 <= d <= ceiling for d in delays)
        # full jitter: the whole range is used, not just the top of it
        assert min(delays) < 0.05 * ceiling
        assert max(delays) > 0.95 * ceiling
    assert max(backoff_delay(60, cap=30.0, rng=rng) for _ in range(100)) <= 30.0


def test_backoff_jitter_spreads_retries() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(5, base=1.0, cap=100.0, rng=rng) for _ in range(5000)]
    mean = sum(delays) / len(delays)
    assert mean == pytest.approx(8.0, rel=0.05)  # uniform on [0, 16]


def test_backoff_refuses_attempt_zero() -> None:
    with pytest.raises(ValueError, match="attempt 0"):
        backoff_delay(0)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0", 0.0), ("3", 3.0), (" 120 ", 120.0), (None, None), ("", None), ("soon", None)],
)
def test_retry_after_delta_seconds(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


def test_retry_after_http_date() -> None:
    now = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert header == "Wed, 25 Nov 2026 10:01:30 GMT"
    assert parse_retry_after(header, now) == pytest.approx(90.0)


def test_retry_after_http_date_in_the_past_is_zero() -> None:
    now = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 25 Nov 2026 09:59:00 GMT", now) == 0.0


def test_retry_after_obsolete_date_forms() -> None:
    # RFC 9110 asks recipients to accept the obsolete RFC 850 and asctime forms too
    now = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Wednesday, 25-Nov-26 10:00:05 GMT", now) == pytest.approx(5.0)
    assert parse_retry_after("Wed Nov 25 10:00:07 2026", now) == pytest.approx(7.0)


def test_a_batch_retried_thousands_of_times_waits_the_cap() -> None:
    assert backoff_delay(5_000, base=0.01, cap=0.05, rng=random.Random(1)) <= 0.05
