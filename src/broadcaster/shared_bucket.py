"""One shared send-rate budget: a `rate_buckets` row that every sender process leases from.

Each budget (messages/s, requests/s) is one row. A process leases tokens in small chunks with
one atomic `UPDATE ... RETURNING`; the bucket may go into debt, and the debt tells the lessee
how long to wait for its chunk, so concurrent lessees queue up without polling and together
never draw more than `burst + rate * t`. Between leases each process paces its requests
locally (GCRA at the bucket's rate), so they go out evenly instead of one chunk at a time.

Adaptive: a 429 pauses the bucket for everyone until `Retry-After` has passed and cuts its
rate (multiplicative decrease); a 5xx or timeout cuts it by a gentler factor; leases taken
while requests succeed, by a process that had to wait for its budget (the rate is what holds
it back), raise it again, linearly in time (additive increase). Cuts closer together than
`cooldown_seconds` count once, so a burst of 429s from the requests in flight of several
processes is one signal.

`RateLimits` says how the buckets behave. `broadcaster.ratelimit` makes the buckets of a
process and says where their rates come from; `broadcaster.buckets` holds the row's
statements.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from math import log
from typing import Protocol

import asyncpg

from broadcaster.backoff import backoff_delay
from broadcaster.clock import Clock
from broadcaster.records import BucketLease

logger = logging.getLogger(__name__)

# slow start: a learned rate that was never cut grows by this much of itself a second (doubles)
SLOW_START_PER_SECOND = log(2.0)
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
    """How a `GlobalRateLimiter` behaves; rates of 0 are not configured (see `learn`).

    The configurable ones have no default here: `broadcaster.main` maps them from the settings.
    """

    messages_per_second: float
    requests_per_second: float
    bucket: str
    lease_seconds: float  # a lease is this many seconds of budget (at least one request)
    burst_seconds: float  # budget an idle bucket saves up
    recovery_per_second: float  # fraction of the configured rate regained per second
    cooldown_seconds: float  # cuts closer together count once; no recovery meanwhile
    learn: bool  # no messages/s configured: learn the dealer's (False: unlimited)
    learn_start: float  # messages/s a learned bucket starts from
    learn_increase: float  # fraction of the learned rate added per second
    throttle_factor: float = 0.5  # rate multiplier on 429 (and on the first 429 learning)
    learn_factor: float = 0.75  # learned rate multiplier on each later 429
    server_error_factor: float = 0.8  # rate multiplier on 5xx
    floor: float = 0.05  # the rate never drops below this fraction of the configured rate

    def __post_init__(self) -> None:
        if self.messages_per_second < 0 or self.requests_per_second < 0:
            raise ValueError("Rate limits must be 0 (not configured) or positive.")
        factors = (self.throttle_factor, self.learn_factor, self.server_error_factor)
        if not all(0 < factor <= 1 for factor in factors):
            raise ValueError("Rate cut factors must be in (0, 1].")
        if not 0 < self.floor <= 1:
            raise ValueError("The rate floor must be a fraction in (0, 1].")
        if not 0 < len(self.bucket) <= MAX_BUCKET_NAME:
            raise ValueError(
                f"Rate bucket name '{self.bucket}' must be 1 to {MAX_BUCKET_NAME} characters."
            )
        if self.lease_seconds <= 0 or self.burst_seconds < 0 or self.recovery_per_second < 0:
            raise ValueError("Lease, burst and recovery settings must not be negative.")
        if self.learn_start <= 0 or self.learn_increase < 0:
            raise ValueError("A learned rate needs a positive start and an increase of 0 or more.")


class BucketStore(Protocol):
    """The `rate_buckets` statements a bucket needs (`buckets.Buckets`). `at` is the time the
    statement works at, shared by every process: None for the database's own
    `clock_timestamp()`."""

    async def ensure_bucket(
        self, name: str, start: float, ceiling: float | None, burst: float, at: datetime | None
    ) -> None:
        """Create the row full at rate `start`; an existing one takes `burst` and keeps its
        rate, at most `ceiling` (None: no ceiling)."""
        ...

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

    async def follow_bucket(self, name: str, rate: float) -> None:
        """Set the rate to `rate`."""
        ...


class SharedBucket:
    """One `rate_buckets` row, leased in chunks and paced locally.

    `configured` is the operator's ceiling; None learns the rate (`RateLimits.learn`).
    `acquire` is safe to call from many coroutines of one process; they go out in turn.
    """

    def __init__(
        self,
        store: BucketStore,
        name: str,
        configured: float | None,
        limits: RateLimits,
        clock: Clock,
    ) -> None:
        if configured is not None and configured <= 0:
            raise ValueError(f"Bucket '{name}' needs a positive rate, not {configured}.")
        self._store = store
        self._clock = clock
        self.name = name
        self.configured = configured
        self.advertised: float | None = None  # the dealer's RateLimit-Policy, once seen
        self._limits = limits
        self._lock = asyncio.Lock()
        # cuts go to the database one at a time: a storm of 429s holds one pooled
        # connection, not one per request in flight
        self._cutting = asyncio.Lock()
        self._ensured = False
        self._held = 0.0  # tokens leased and not spent
        self._ready = 0.0  # clock time at which the held tokens may be spent
        self._tat = 0.0  # GCRA: clock time the next request may go at the local pace
        # the bucket's effective rate at the last lease
        self.rate = configured if configured is not None else limits.learn_start
        self.probing = configured is None  # a learned row never cut yet: slow start
        # a request went through since the last cut: a process whose requests keep failing
        # does not raise the rate, and every lease of one whose requests go through does,
        # even one that leased while its own last request was still in flight
        self._succeeded = False
        # acquire waited for budget since the last lease: the rate is what holds the senders
        # back. Only then does it grow: a rate nobody uses up stays near what was tried.
        self._waited = False
        self.leases = 0  # database round trips, for tests and metrics

    @property
    def ceiling(self) -> float | None:
        """The rate the bucket never exceeds: configured or advertised; None when learning."""
        bounds = [rate for rate in (self.configured, self.advertised) if rate is not None]
        return min(bounds) if bounds else None

    @property
    def learning(self) -> bool:
        """No ceiling: the rate is found by probing the dealer."""
        return self.ceiling is None

    @property
    def throttle_factor(self) -> float:
        """The cut a 429 makes: half, except that a learned rate past slow start is cut less
        (it was found by small steps, and halving it would waste a quarter of the dealer)."""
        if self.learning and not self.probing:
            return self._limits.learn_factor
        return self._limits.throttle_factor

    def _basis(self) -> float:
        """The rate chunk, burst, floor and recovery step are fractions of."""
        ceiling = self.ceiling
        return ceiling if ceiling is not None else self.rate

    def _chunk(self) -> float:
        return max(1.0, self.rate * self._limits.lease_seconds)

    def _burst(self) -> float:
        return max(self._chunk(), self._basis() * self._limits.burst_seconds)

    def _step(self) -> float:
        """The rate added per second while requests succeed."""
        if not self.learning:
            return self._basis() * self._limits.recovery_per_second
        if self.probing:
            return self.rate * SLOW_START_PER_SECOND
        return self.rate * self._limits.learn_increase

    def _floor(self) -> float:
        ceiling = self.ceiling
        basis = ceiling if ceiling is not None else self._limits.learn_start
        return basis * self._limits.floor

    async def acquire(self, tokens: float) -> None:
        """Wait until `tokens` may be spent, leasing from the shared row as needed."""
        if tokens <= 0:
            raise ValueError(f"Cannot acquire {tokens} tokens from bucket '{self.name}'.")
        async with self._lock:
            while True:
                if self._held < tokens:
                    await self._lease(max(self._chunk(), tokens - self._held))
                    continue
                now = self._clock.now()
                start = max(self._ready, self._tat)
                if start <= now:
                    break
                self._waited = True
                await self._clock.sleep(start - now)
            self._held -= tokens
            self._tat = max(self._tat, now) + tokens / self.rate

    async def _lease(self, take: float) -> None:
        lease = await self._execute_lease(take)
        self.rate = lease.rate
        self.probing = lease.probing
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
                    ceiling = self.ceiling
                    await self._store.ensure_bucket(
                        self.name,
                        ceiling if ceiling is not None else self._limits.learn_start,
                        ceiling,
                        self._burst(),
                        self._clock.shared_time(),
                    )
                    self._ensured = True
                lease = await self._store.lease_bucket(
                    self.name,
                    float(take),
                    ceiling=self.ceiling,
                    step=self._step(),
                    recover=self._succeeded and self._waited,
                    cooldown=self._limits.cooldown_seconds,
                    burst=self._burst(),
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
        self._waited = False
        return lease

    async def cut(self, factor: float, pause: float) -> None:
        """Multiply the shared rate by `factor` (once per cooldown); pause everyone `pause` s.

        A database failure here is logged and the cut applied to this process only: slowing
        down must never be what breaks a send.
        """
        floor = self._floor()
        try:
            async with self._cutting:
                await self._store.cut_bucket(
                    self.name,
                    factor=factor,
                    floor=floor,
                    pause=pause,
                    cooldown=self._limits.cooldown_seconds,
                    at=self._clock.shared_time(),
                )
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            logger.warning("rate bucket %s: could not share a rate cut", self.name, exc_info=True)
            self.rate = max(floor, self.rate * factor)
        self._succeeded = False
        if pause > 0:
            # tokens held here were leased before the pause: do not spend them during it
            self._held = 0.0
            self._ready = max(self._ready, self._clock.now() + pause)

    async def follow(self, advertised: float) -> None:
        """The dealer advertised `advertised` a second: the shared rate is that, at most the
        configured one, at once (a process does this once per advertised value)."""
        if advertised <= 0 or advertised == self.advertised:
            return
        self.advertised = advertised
        rate = self._basis()
        self.rate = rate
        logger.info("rate bucket %s: following the dealer's %.6g/s", self.name, rate)
        try:
            await self._store.follow_bucket(self.name, rate)
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            logger.warning("rate bucket %s: could not share a quota", self.name, exc_info=True)

    def succeeded(self) -> None:
        """A request went through; the next lease may raise the rate again."""
        self._succeeded = True
