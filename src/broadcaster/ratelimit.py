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
from typing import Protocol

import asyncpg

from broadcaster.backoff import backoff_delay
from broadcaster.clock import Clock, LoopClock
from broadcaster.records import BucketLease

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
    asyncpg.AdminShutdownError,
    asyncpg.InterfaceError,
)


def database_unavailable(exc: BaseException) -> bool:
    """True when `exc` says the database cannot be reached now, not that a query is wrong."""
    return isinstance(exc, _UNAVAILABLE)


@dataclass(frozen=True, kw_only=True)
class RateLimits:
    """How a `GlobalRateLimiter` behaves; rates of 0 mean unlimited.

    The configurable ones have no default here: `broadcaster.main` maps them from the settings.
    """

    messages_per_second: float
    requests_per_second: float
    bucket: str
    lease_seconds: float  # a lease is this many seconds of budget (at least one request)
    burst_seconds: float  # budget an idle bucket saves up
    recovery_per_second: float  # fraction of the configured rate regained per second
    cooldown_seconds: float  # cuts closer together count once; no recovery meanwhile
    throttle_factor: float = 0.5  # rate multiplier on 429
    server_error_factor: float = 0.8  # rate multiplier on 5xx
    floor: float = 0.05  # the rate never drops below this fraction of the configured rate

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


class BucketStore(Protocol):
    """The `rate_buckets` statements a bucket needs (`Store`). `at` is the time the statement
    works at, shared by every process: None for the database's own `clock_timestamp()`."""

    async def ensure_bucket(
        self, name: str, rate: float, burst: float, at: datetime | None
    ) -> None:
        """Create the row full; an existing one takes `burst` and at most `rate`."""
        ...

    async def lease_bucket(
        self,
        name: str,
        take: float,
        *,
        configured: float,
        step: float,
        recover: bool,
        cooldown: float,
        at: datetime | None,
    ) -> BucketLease | None:
        """Refill for the time passed, raise the rate when `recover`, take `take` tokens
        (into debt if need be; nothing while paused); None when the row does not exist."""
        ...

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
        bucket `pause` seconds when positive."""
        ...


class SharedBucket:
    """One `rate_buckets` row, leased in chunks and paced locally.

    `acquire` is safe to call from many coroutines of one process; they go out in turn.
    """

    def __init__(
        self, store: BucketStore, name: str, rate: float, limits: RateLimits, clock: Clock
    ) -> None:
        if rate <= 0:
            raise ValueError(f"Bucket '{name}' needs a positive rate, not {rate}.")
        self._store = store
        self._clock = clock
        self.name = name
        self.configured = rate
        self._limits = limits
        self._chunk = max(1.0, rate * limits.lease_seconds)
        self._burst = max(self._chunk, rate * limits.burst_seconds)
        self._lock = asyncio.Lock()
        # cuts go to the database one at a time: a storm of 429s holds one pooled
        # connection, not one per request in flight
        self._cutting = asyncio.Lock()
        self._ensured = False
        self._held = 0.0  # tokens leased and not spent
        self._ready = 0.0  # clock time at which the held tokens may be spent
        self._tat = 0.0  # GCRA: clock time the next request may go at the local pace
        self.rate = rate  # the bucket's effective rate at the last lease
        self._succeeded = False  # successes since the last lease, and no cut
        self.leases = 0  # database round trips, for tests and metrics

    async def acquire(self, tokens: float) -> None:
        """Wait until `tokens` may be spent, leasing from the shared row as needed."""
        if tokens <= 0:
            raise ValueError(f"Cannot acquire {tokens} tokens from bucket '{self.name}'.")
        async with self._lock:
            while True:
                if self._held < tokens:
                    await self._lease(max(self._chunk, tokens - self._held))
                    continue
                now = self._clock.now()
                start = max(self._ready, self._tat)
                if start <= now:
                    break
                await self._clock.sleep(start - now)
            self._held -= tokens
            self._tat = max(self._tat, now) + tokens / self.rate

    async def _lease(self, take: float) -> None:
        lease = await self._execute_lease(take)
        self.rate = lease.rate
        self._ready = max(self._ready, self._clock.now() + lease.wait)
        if lease.paused:
            await self._clock.sleep(lease.wait)
            return
        self._held += take

    async def _execute_lease(self, take: float) -> BucketLease:
        attempt = 0
        while True:
            try:
                if not self._ensured:
                    await self._store.ensure_bucket(
                        self.name, self.configured, self._burst, self._clock.shared_time()
                    )
                    self._ensured = True
                lease = await self._store.lease_bucket(
                    self.name,
                    float(take),
                    configured=self.configured,
                    step=self.configured * self._limits.recovery_per_second,
                    recover=self._succeeded,
                    cooldown=self._limits.cooldown_seconds,
                    at=self._clock.shared_time(),
                )
                if lease is None:
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
                await self._clock.sleep(delay)
        self.leases += 1
        self._succeeded = False
        return lease

    async def cut(self, factor: float, pause: float) -> None:
        """Multiply the shared rate by `factor` (once per cooldown); pause everyone `pause` s.

        A database failure here is logged and the cut applied to this process only: slowing
        down must never be what breaks a send.
        """
        try:
            async with self._cutting:
                await self._store.cut_bucket(
                    self.name,
                    factor=factor,
                    floor=self.configured * self._limits.floor,
                    pause=pause,
                    cooldown=self._limits.cooldown_seconds,
                    at=self._clock.shared_time(),
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
            self._ready = max(self._ready, self._clock.now() + pause)

    def succeeded(self) -> None:
        """A request went through; the next lease may raise the rate again."""
        self._succeeded = True


class GlobalRateLimiter:
    """The `RateLimiter` every sender process shares through `rate_buckets`.

    Two buckets, `<bucket>:messages` and `<bucket>:requests`, each skipped when its rate is
    0; with both at 0 the limiter never touches the database.
    """

    def __init__(self, store: BucketStore, limits: RateLimits, clock: Clock | None = None) -> None:
        self.limits = limits
        self._clock = clock or LoopClock()
        self._messages = self._bucket(store, "messages", limits.messages_per_second)
        self._requests = self._bucket(store, "requests", limits.requests_per_second)
        # unlimited: a 429 still pauses this process's requests (there is no row to share it)
        self._paused_until = 0.0

    def _bucket(self, store: BucketStore, unit: str, rate: float) -> SharedBucket | None:
        if rate <= 0:
            return None
        return SharedBucket(store, f"{self.limits.bucket}:{unit}", rate, self.limits, self._clock)

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
            delay = self._paused_until - self._clock.now()
            if delay > 0:
                await self._clock.sleep(delay)
            return
        if self._messages is not None:
            await self._messages.acquire(messages)
        if self._requests is not None:
            await self._requests.acquire(1)

    async def throttled(self, retry_after: float | None) -> None:
        """The provider answered 429: pause everyone `retry_after` seconds and slow down."""
        pause = DEFAULT_PAUSE_SECONDS if retry_after is None else max(0.0, retry_after)
        if not self.buckets:
            self._paused_until = max(self._paused_until, self._clock.now() + pause)
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
