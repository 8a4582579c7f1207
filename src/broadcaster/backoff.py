"""Retry timing: capped exponential backoff with full jitter, and `Retry-After` parsing."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def backoff_delay(
    attempt: int, base: float = 0.2, cap: float = 30.0, rng: random.Random | None = None
) -> float:
    """Seconds before retry number `attempt` (1-based): uniform in [0, min(cap, base*2^n)]."""
    if attempt < 1:
        raise ValueError(f"Retry attempt {attempt} is not a positive number.")
    # the exponent stops growing long before it could overflow a float: a batch retried
    # past a thousand attempts waits `cap`, it does not crash its pipe
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 64))
    return (rng or random).uniform(0, ceiling)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds asked for by a `Retry-After` header, in delta-seconds or HTTP-date form.

    None when the header is absent or unreadable; never negative.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
