"""The global send-rate budget: token buckets in `rate_buckets`, shared by every sender process.

Each budget (messages/s, requests/s) is one row. A process leases tokens in small chunks with
one atomic `UPDATE ... RETURNING`; the bucket may go into debt, and the debt tells the lessee
how long to wait for its chunk, so concurrent lessees queue up without polling and together
never draw more than `burst + rate * t`. Between leases each process paces its requests
locally (GCRA at the bucket's rate), so they go out evenly instead of one chunk at a time.

Adaptive: a 429 pauses the bucket for everyone until `Retry-After` has passed and cuts its
rate in half (multiplicative decrease); a 5xx or timeout cuts it by a gentler factor; leases
taken while requests succeed raise it again, linearly in time, up to the configured rate.
Cuts closer together than `cooldown_seconds` count once, so a burst of 429s from the
requests in flight of several processes is one signal, not many.

A configured rate of 0 means unlimited: that budget does no database work at all.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from broadcaster.backoff import backoff_delay
from broadcaster.config import BroadcasterSettings

logger = logging.getLogger(__name__)

# seconds everyone waits after a 429 that carried no usable Retry-After
DEFAULT_PAUSE_SECONDS = 1.0
# longest bucket name: rows are `<bucket>:messages` and `<bucket>:requests` in a String(64)
MAX_BUCKET_NAME = 50

# the server is away, restarting or dropped the connection: worth waiting out
_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
)


def database_unavailable(exc: BaseException) -> bool:
    """True when `exc` says the database cannot be reached now, not that a query is wrong."""
    if isinstance(exc, _UNAVAILABLE):
        return True
    if isinstance(exc, DBAPIError):
        cause = exc.orig.__cause__ if exc.orig is not None else None
        return (
            exc.connection_invalidated
            or isinstance(exc, OperationalError)
            or isinstance(cause, _UNAVAILABLE)
        )
    return False


@dataclass(frozen=True)
class RateLimits:
    """How a `GlobalRateLimiter` behaves; rates of 0 mean unlimited."""

    messages_per_second: float = 0.0
    requests_per_second: float = 0.0
    bucket: str = "provider"
    lease_seconds: float = 0.1  # a lease is this many seconds of budget (at least one request)
    burst_seconds: float = 0.1  # budget an idle bucket saves up
    throttle_factor: float = 0.5  # rate multiplier on 429
    server_error_factor: float = 0.8  # rate multiplier on 5xx
    recovery_per_second: float = 0.1  # fraction of the configured rate regained per second
    floor: float = 0.05  # the rate never drops below this fraction of the configured rate
    cooldown_seconds: float = 2.0  # cuts closer together count once; no recovery meanwhile

    @classmethod
    def from_settings(cls, settings: BroadcasterSettings) -> RateLimits:
        """The limits `allim broadcaster` was configured with."""
        return cls(
            messages_per_second=settings.broadcaster_rate_messages_per_second,
            requests_per_second=settings.broadcaster_rate_requests_per_second,
            bucket=settings.broadcaster_rate_bucket,
            lease_seconds=settings.broadcaster_rate_lease_seconds,
            burst_seconds=settings.broadcaster_rate_burst_seconds,
            recovery_per_second=settings.broadcaster_rate_recovery_per_second,
            cooldown_seconds=settings.broadcaster_rate_cooldown_seconds,
        )

    def __post_init__(self) -> None:
        if self.messages_per_second < 0 or self.requests_per_second < 0:
            raise ValueError("Rate limits must be 0 (unlimited) or positive.")
        if not 0 < self.throttle_factor <= 1 or not 0 < self.server_error_factor <= 1:
            raise ValueError("Rate cut factors must be in (0, 1].")
        if not 0 < self.floor <= 1:
            raise ValueError("The rate floor must be a fraction in (0, 1].")
        if not 0 < len(self.bucket) <= MAX_BUCKET_NAME:
            raise ValueError(
                f"Rate bucket name '{self.bucket}' must be 1 to {MAX_BUCKET_NAME} characters."
            )
        if self.lease_seconds <= 0 or self.burst_seconds < 0 or self.recovery_per_second < 0:
            raise ValueError("Lease, burst and recovery settings must not be negative.")


_ENSURE = text(
    """
    INSERT INTO rate_buckets (name, tokens, rate, burst, refilled_at)
    VALUES (:name, CAST(:burst AS float8), CAST(:rate AS float8), CAST(:burst AS float8),
            clock_timestamp())
    ON CONFLICT (name) DO UPDATE
        SET burst = EXCLUDED.burst, rate = LEAST(rate_buckets.rate, EXCLUDED.rate)
    """
)

# One statement: refill for the time passed (a pause does not count), raise the rate when the
# lessee has seen successes and no cut is recent, and take the tokens, into debt if need be.
_LEASE = text(
    """
    WITH p AS (
        SELECT clock_timestamp() AS ts,
               CAST(:take AS float8) AS take,
               CAST(:configured AS float8) AS configured,
               CAST(:step AS float8) AS step,
               CAST(:recover AS boolean) AS recover,
               make_interval(secs => CAST(:cooldown AS float8)) AS cooldown
    ),
    cur AS (
        SELECT b.name, p.*,
               COALESCE(b.paused_until > p.ts, false) AS paused,
               GREATEST(0.0, EXTRACT(EPOCH FROM p.ts - GREATEST(
                   b.refilled_at, COALESCE(b.paused_until, b.refilled_at))))::float8 AS elapsed,
               p.recover AND COALESCE(b.adjusted_at <= p.ts - p.cooldown, true) AS recovering
        FROM rate_buckets AS b, p
        WHERE b.name = :name
        FOR UPDATE OF b
    )
    UPDATE rate_buckets AS b SET
        rate = LEAST(c.configured, CASE
            WHEN NOT c.paused AND c.recovering THEN b.rate + c.step * c.elapsed
            ELSE b.rate END),
        tokens = CASE WHEN c.paused THEN b.tokens
            ELSE LEAST(b.burst, b.tokens + b.rate * c.elapsed) - c.take END,
        refilled_at = CASE WHEN c.paused THEN b.refilled_at ELSE c.ts END
    FROM cur AS c
    WHERE b.name = c.name
    RETURNING b.tokens, b.rate, c.paused, b.paused_until, c.ts
    """
)

# A 429 or a 5xx: cut the rate (once per cooldown) and, when `pause` > 0, pause everyone.
_CUT = text(
    """
    WITH p AS (
        SELECT clock_timestamp() AS ts,
               CAST(:factor AS float8) AS factor,
               CAST(:floor AS float8) AS floor,
               make_interval(secs => CAST(:pause AS float8)) AS pause,
               make_interval(secs => CAST(:cooldown AS float8)) AS cooldown
    ),
    cur AS (
        SELECT b.name, p.*, COALESCE(b.adjusted_at <= p.ts - p.cooldown, true) AS cutting
        FROM rate_buckets AS b, p
        WHERE b.name = :name
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
)


@dataclass(frozen=True)
class Lease:
    """What one lease returned: the bucket's rate now, and seconds until the chunk is usable."""

    rate: float
    wait: float
    paused: bool


class SharedBucket:
    """One `rate_buckets` row, leased in chunks and paced locally.

    `acquire` is safe to call from many coroutines of one process; they go out in turn.
    """

    def __init__(self, engine: AsyncEngine, name: str, rate: float, limits: RateLimits) -> None:
        if rate <= 0:
            raise ValueError(f"Bucket '{name}' needs a positive rate, not {rate}.")
        self._engine = engine
        self.name = name
        self.configured = rate
        self._limits = limits
        self._chunk = max(1.0, rate * limits.lease_seconds)
        self._burst = max(self._chunk, rate * limits.burst_seconds)
        self._lock = asyncio.Lock()
        self._ensured = False
        self._held = 0.0  # tokens leased and not spent
        self._ready = 0.0  # loop time at which the held tokens may be spent
        self._tat = 0.0  # GCRA: loop time the next request may go at the local pace
        self.rate = rate  # the bucket's effective rate at the last lease
        self._succeeded = False  # successes since the last lease, and no cut
        self.leases = 0  # database round trips, for tests and metrics

    async def acquire(self, tokens: float) -> None:
        """Wait until `tokens` may be spent, leasing from the shared row as needed."""
        if tokens <= 0:
            raise ValueError(f"Cannot acquire {tokens} tokens from bucket '{self.name}'.")
        loop = asyncio.get_running_loop()
        async with self._lock:
            while True:
                if self._held < tokens:
                    await self._lease(max(self._chunk, tokens - self._held))
                    continue
                now = loop.time()
                start = max(self._ready, self._tat)
                if start <= now:
                    break
                await asyncio.sleep(start - now)
            self._held -= tokens
            self._tat = max(self._tat, now) + tokens / self.rate

    async def _lease(self, take: float) -> None:
        lease = await self._execute_lease(take)
        loop = asyncio.get_running_loop()
        self.rate = lease.rate
        if lease.paused:
            self._ready = max(self._ready, loop.time() + lease.wait)
            await asyncio.sleep(lease.wait)
            return
        self._held += take
        self._ready = max(self._ready, loop.time() + lease.wait)

    async def _execute_lease(self, take: float) -> Lease:
        attempt = 0
        while True:
            try:
                if not self._ensured:
                    await self._ensure()
                async with self._engine.begin() as conn:
                    row = (
                        await conn.execute(
                            _LEASE,
                            {
                                "name": self.name,
                                "take": float(take),
                                "configured": self.configured,
                                "step": self.configured * self._limits.recovery_per_second,
                                "recover": self._succeeded,
                                "cooldown": self._limits.cooldown_seconds,
                            },
                        )
                    ).one_or_none()
                if row is None:
                    # the row was deleted under us (a reset by an operator): create it again
                    self._ensured = False
                    continue
                break
            except Exception as exc:
                if not database_unavailable(exc):
                    raise
                attempt += 1
                delay = backoff_delay(attempt, base=0.1, cap=5.0)
                logger.warning(
                    "rate bucket %s: lease failed, retrying in %.2f s",
                    self.name,
                    delay,
                    exc_info=True,
                )
                await asyncio.sleep(delay)
        self.leases += 1
        self._succeeded = False
        tokens, rate, paused, paused_until, ts = row
        rate = float(rate)
        if paused:
            return Lease(rate, _seconds_between(ts, paused_until), True)
        return Lease(rate, max(0.0, -float(tokens)) / rate, False)

    async def _ensure(self) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                _ENSURE, {"name": self.name, "burst": self._burst, "rate": self.configured}
            )
        self._ensured = True

    async def cut(self, factor: float, pause: float) -> None:
        """Multiply the shared rate by `factor` (once per cooldown); pause everyone `pause` s.

        A database failure here is logged and the cut applied to this process only: slowing
        down must never be what breaks a send.
        """
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    _CUT,
                    {
                        "name": self.name,
                        "factor": factor,
                        "floor": self.configured * self._limits.floor,
                        "pause": pause,
                        "cooldown": self._limits.cooldown_seconds,
                    },
                )
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            logger.warning("rate bucket %s: could not share a rate cut", self.name, exc_info=True)
            self.rate = max(self.configured * self._limits.floor, self.rate * factor)
        self._succeeded = False
        if pause > 0:
            # tokens held here were leased before the pause: do not spend them during it
            self._held = 0.0
            self._ready = max(self._ready, asyncio.get_running_loop().time() + pause)

    def succeeded(self) -> None:
        """A request went through; the next lease may raise the rate again."""
        self._succeeded = True


def _seconds_between(start: datetime, end: datetime | None) -> float:
    return 0.0 if end is None else max(0.0, (end - start).total_seconds())


class GlobalRateLimiter:
    """The `RateLimiter` every sender process shares through `rate_buckets`.

    Two buckets, `<bucket>:messages` and `<bucket>:requests`, each skipped when its rate is
    0; with both at 0 the limiter never touches the database.
    """

    def __init__(self, engine: AsyncEngine, limits: RateLimits) -> None:
        self.limits = limits
        self._messages = (
            SharedBucket(engine, f"{limits.bucket}:messages", limits.messages_per_second, limits)
            if limits.messages_per_second > 0
            else None
        )
        self._requests = (
            SharedBucket(engine, f"{limits.bucket}:requests", limits.requests_per_second, limits)
            if limits.requests_per_second > 0
            else None
        )
        # unlimited: a 429 still pauses this process's requests (there is no row to share it)
        self._paused_until = 0.0

    @property
    def buckets(self) -> tuple[SharedBucket, ...]:
        """The buckets in use (none when unlimited)."""
        return tuple(b for b in (self._messages, self._requests) if b is not None)

    @property
    def messages_rate(self) -> float | None:
        """The shared messages/s rate at the last lease; None when unlimited."""
        return self._messages.rate if self._messages is not None else None

    async def acquire(self, messages: int) -> None:
        """Wait for budget for one request of `messages` recipients."""
        if not self.buckets:
            delay = self._paused_until - asyncio.get_running_loop().time()
            if delay > 0:
                await asyncio.sleep(delay)
            return
        if self._messages is not None:
            await self._messages.acquire(messages)
        if self._requests is not None:
            await self._requests.acquire(1)

    async def throttled(self, retry_after: float | None) -> None:
        """The provider answered 429: pause everyone `retry_after` seconds and slow down."""
        pause = DEFAULT_PAUSE_SECONDS if retry_after is None else max(0.0, retry_after)
        if not self.buckets:
            now = asyncio.get_running_loop().time()
            self._paused_until = max(self._paused_until, now + pause)
        for bucket in self.buckets:
            await bucket.cut(self.limits.throttle_factor, pause)

    async def server_error(self) -> None:
        """The provider answered 5xx or timed out: slow down, without pausing."""
        for bucket in self.buckets:
            await bucket.cut(self.limits.server_error_factor, 0.0)

    async def succeeded(self) -> None:
        """A request went through: recover towards the configured rate."""
        for bucket in self.buckets:
            bucket.succeeded()
