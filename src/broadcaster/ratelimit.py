"""The global send-rate budget: token buckets in `rate_buckets`, shared by every sender process.

Each budget (messages/s, requests/s) is one row, leased in chunks and paced locally by each
process, cut on 429s and 5xx and raised again while requests succeed
(`broadcaster.shared_bucket`).

Where the rate comes from:
- configured (`messages_per_second` > 0): a ceiling; the rate is cut below it and recovers
  to it by `recovery_per_second` of it a second;
- not configured, with `learn`: the senders find the dealer's rate as TCP finds a path's: a
  new row starts at `learn_start` and doubles every second until the first 429 (slow start),
  which halves it; from then on each 429 cuts it by `learn_factor` and successes add
  `learn_increase` of it a second. The learned rate lives in the row, so every process
  shares one rate, and it is held across sends and restarts;
- advertised by the dealer (`RateLimit-Policy`, `broadcaster.quotas`): followed at once, as
  a ceiling below the configured one; a unit with no bucket yet gets one;
- not configured and not learned: unlimited, no database work, until a dealer advertises.
"""

from __future__ import annotations

from collections.abc import Sequence

from broadcaster.clock import Clock, LoopClock
from broadcaster.quotas import Quota, Unit
from broadcaster.shared_bucket import BucketStore, RateLimits, SharedBucket

# seconds everyone waits after a 429 that carried no usable Retry-After
DEFAULT_PAUSE_SECONDS = 1.0


class GlobalRateLimiter:
    """The `RateLimiter` every sender process shares through `rate_buckets`.

    Two buckets, `<bucket>:messages` and `<bucket>:requests`: the messages one configured or
    learned, the requests one only when configured; either made when the dealer advertises a
    quota in its unit. With neither the limiter never touches the database.
    """

    def __init__(self, store: BucketStore, limits: RateLimits, clock: Clock | None = None) -> None:
        self.limits = limits
        self._store = store
        self._clock = clock or LoopClock()
        self._messages: SharedBucket | None = None
        self._requests: SharedBucket | None = None
        if limits.messages_per_second > 0 or limits.learn:
            self._messages = self._bucket("messages", limits.messages_per_second or None)
        if limits.requests_per_second > 0:
            self._requests = self._bucket("requests", limits.requests_per_second)
        # unlimited: a 429 still pauses this process's requests (there is no row to share it)
        self._paused_until = 0.0

    def _bucket(self, unit: Unit, rate: float | None) -> SharedBucket:
        name = f"{self.limits.bucket}:{unit}"
        return SharedBucket(self._store, name, rate, self.limits, self._clock)

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

    async def advertised(self, quotas: Sequence[Quota]) -> None:
        """The dealer told its quotas: follow the strictest of each unit, and wait out one
        it says is used up until it is restored."""
        for unit in ("messages", "requests"):
            of_unit = [quota for quota in quotas if quota.unit == unit]
            if not of_unit:
                continue
            bucket = self._messages if unit == "messages" else self._requests
            if bucket is None:
                bucket = self._bucket(unit, None)
                if unit == "messages":
                    self._messages = bucket
                else:
                    self._requests = bucket
            await bucket.follow(min(quota.per_second for quota in of_unit))
            spent = [q.reset for q in of_unit if q.remaining == 0 and q.reset]
            if spent:
                await bucket.cut(1.0, max(spent))

    async def throttled(self, retry_after: float | None, quotas: Sequence[Quota] = ()) -> None:
        """The provider answered 429: pause everyone `retry_after` seconds and slow down."""
        if quotas:
            await self.advertised(quotas)
        pause = DEFAULT_PAUSE_SECONDS if retry_after is None else max(0.0, retry_after)
        if not self.buckets:
            self._paused_until = max(self._paused_until, self._clock.now() + pause)
        for bucket in self.buckets:
            await bucket.cut(bucket.throttle_factor, pause)

    async def server_error(self) -> None:
        """The provider answered 5xx or timed out: slow down, without pausing."""
        for bucket in self.buckets:
            await bucket.cut(self.limits.server_error_factor, 0.0)

    async def succeeded(self, quotas: Sequence[Quota] = ()) -> None:
        """A request went through: follow the quotas it advertised, and let the rate grow."""
        if quotas:
            await self.advertised(quotas)
        for bucket in self.buckets:
            bucket.succeeded()
