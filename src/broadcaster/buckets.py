"""The global rate limiter's rows in `rate_buckets`, one statement a round trip each.

`Buckets` is the `shared_bucket.BucketStore` the wiring gives every limiter: each sender
process leases from the same rows, so they share one budget. `at` is the time a statement
works at: None for the database's own `clock_timestamp()`, a given time when a test drives
the clock.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from broadcaster.records import BucketLease

# A new row starts full at the start rate; an existing one keeps its rate (a learned rate is
# held across sends and restarts) unless the ceiling (NULL: none) is lower.
ENSURE_BUCKET = """
INSERT INTO rate_buckets (name, tokens, rate, burst, refilled_at)
VALUES ($1, $2::float8, $3::float8, $2::float8, COALESCE($4::timestamptz, clock_timestamp()))
ON CONFLICT (name) DO UPDATE
    SET burst = EXCLUDED.burst, rate = LEAST(rate_buckets.rate, $5::float8)
"""

# One statement: refill for the time passed (a pause does not count), raise the rate when the
# lessee asks (it has seen successes and had to wait for its budget) and no cut is recent, and
# take the tokens, into debt if need be; the debt (or the pause) says how long the lessee waits
# for its tokens. The ceiling and the burst may be NULL: no ceiling, the row's burst.
LEASE_BUCKET = """
WITH p AS (
    SELECT COALESCE($7::timestamptz, clock_timestamp()) AS ts,
           $2::float8 AS take,
           $3::float8 AS ceiling,
           $4::float8 AS step,
           $5::boolean AS recover,
           make_interval(secs => $6::float8) AS cooldown,
           $8::float8 AS burst
),
cur AS (
    SELECT b.name, p.ts, p.take, p.ceiling, p.step, p.cooldown,
           COALESCE(p.burst, b.burst) AS burst,
           b.adjusted_at IS NULL AS probing,
           COALESCE(b.paused_until > p.ts, false) AS paused,
           GREATEST(0.0, EXTRACT(EPOCH FROM p.ts - GREATEST(
               b.refilled_at, COALESCE(b.paused_until, b.refilled_at))))::float8 AS elapsed,
           p.recover AND COALESCE(b.adjusted_at <= p.ts - p.cooldown, true) AS recovering
    FROM rate_buckets AS b, p
    WHERE b.name = $1
    FOR UPDATE OF b
)
UPDATE rate_buckets AS b SET
    rate = LEAST(c.ceiling, CASE
        WHEN NOT c.paused AND c.recovering THEN b.rate + c.step * c.elapsed
        ELSE b.rate END),
    burst = c.burst,
    tokens = CASE WHEN c.paused THEN b.tokens
        ELSE LEAST(c.burst, b.tokens + b.rate * c.elapsed) - c.take END,
    refilled_at = CASE WHEN c.paused THEN b.refilled_at ELSE c.ts END
FROM cur AS c
WHERE b.name = c.name
RETURNING b.rate::float8 AS rate, c.paused, c.probing,
    CASE WHEN c.paused THEN GREATEST(0.0, EXTRACT(EPOCH FROM b.paused_until - c.ts))::float8
        ELSE GREATEST(0.0, -b.tokens)::float8 / b.rate END AS wait
"""

# A 429 or a 5xx: cut the rate (once per cooldown) and, when the pause is positive, pause
# everyone and let nobody spend saved-up tokens after it.
CUT_BUCKET = """
WITH p AS (
    SELECT COALESCE($6::timestamptz, clock_timestamp()) AS ts,
           $2::float8 AS factor,
           $3::float8 AS floor,
           make_interval(secs => $4::float8) AS pause,
           make_interval(secs => $5::float8) AS cooldown
),
cur AS (
    SELECT b.name, p.*, COALESCE(b.adjusted_at <= p.ts - p.cooldown, true) AS cutting
    FROM rate_buckets AS b, p
    WHERE b.name = $1
    FOR UPDATE OF b
)
UPDATE rate_buckets AS b SET
    rate = CASE WHEN c.cutting THEN GREATEST(c.floor, b.rate * c.factor) ELSE b.rate END,
    adjusted_at = CASE WHEN c.cutting THEN c.ts ELSE b.adjusted_at END,
    paused_until = CASE WHEN c.pause > interval '0'
        THEN GREATEST(COALESCE(b.paused_until, c.ts), c.ts + c.pause)
        ELSE b.paused_until END,
    tokens = CASE WHEN c.pause > interval '0' THEN LEAST(b.tokens, 0.0) ELSE b.tokens END
FROM cur AS c
WHERE b.name = c.name
"""

# The dealer advertised its quota (RateLimit-Policy): the rate is what it says, at once.
FOLLOW_BUCKET = """
UPDATE rate_buckets SET rate = $2::float8 WHERE name = $1
"""


class Buckets:
    """The `rate_buckets` statements, on a pool shared with the process's store."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def ensure_bucket(
        self, name: str, start: float, ceiling: float | None, burst: float, at: datetime | None
    ) -> None:
        """Create the bucket row full at rate `start`; an existing one takes `burst` and keeps
        its rate, at most `ceiling` (None: no ceiling)."""
        await self.pool.execute(ENSURE_BUCKET, name, burst, start, at, ceiling)

    async def lease_bucket(
        self,
        name: str,
        take: float,
        *,
        ceiling: float | None,
        step: float,
        recover: bool,
        cooldown: float,
        burst: float | None,
        at: datetime | None,
    ) -> BucketLease | None:
        """Refill for the time passed, raise the rate when `recover` (at most to `ceiling`),
        take `take` tokens (into debt if need be; nothing while paused); None when the row
        does not exist. `burst` replaces the row's when given."""
        row = await self.pool.fetchrow(
            LEASE_BUCKET, name, take, ceiling, step, recover, cooldown, at, burst
        )
        if row is None:
            return None
        return BucketLease(row["rate"], row["wait"], row["paused"], row["probing"])

    async def cut_bucket(
        self,
        name: str,
        *,
        factor: float,
        floor: float,
        pause: float,
        cooldown: float,
        at: datetime | None,
    ) -> None:
        """Multiply the rate by `factor` (not below `floor`, once per `cooldown`); pause the
        bucket `pause` seconds when positive, spending none of its saved-up tokens after."""
        await self.pool.execute(CUT_BUCKET, name, factor, floor, pause, cooldown, at)

    async def follow_bucket(self, name: str, rate: float) -> None:
        """Set the bucket's rate to `rate` (what the dealer advertised)."""
        await self.pool.execute(FOLLOW_BUCKET, name, rate)
