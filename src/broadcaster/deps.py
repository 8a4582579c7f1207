"""What the shard pipes of a sender process share: built once by `broadcaster.main`.

The store is declared here as the pipe needs it (`SenderStore`); the alert cache, the
progress throttle and the in-flight slots are per process, bounded, and shared by every pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Protocol

import asyncpg

from broadcaster.batches import BatchStore
from broadcaster.clock import Clock, LoopClock
from broadcaster.control import Control, Priority
from broadcaster.gates import BrandResumeAt, HeldUntil, WallClock
from broadcaster.limits import RateLimiter
from broadcaster.metrics import BroadcasterMetrics
from broadcaster.providers.base import Provider
from broadcaster.publishing import Publisher
from broadcaster.records import AlertInfo, BatchRow, Counters, ShardRow
from broadcaster.settling import Settler
from common.tokens import TokenSigner

# alerts whose content a process keeps at once (it does not change once planned)
CACHED_ALERTS = 256


class SenderStore(BatchStore, Protocol):
    """What a shard's pipe needs of the store, beyond its batches."""

    async def alert(self, alert_id: uuid.UUID) -> AlertInfo | None: ...

    async def counters(self, alert_id: uuid.UUID) -> Counters | None: ...

    async def fail_alert(self, alert_id: uuid.UUID, reason: str) -> Counters | None: ...

    def shard_lock(
        self, alert_id: uuid.UUID, shard_no: int
    ) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection | None]: ...

    async def shard(self, alert_id: uuid.UUID, shard_no: int) -> ShardRow | None: ...

    async def start_shard(self, alert_id: uuid.UUID, shard_no: int) -> None: ...

    async def unsettled(self, alert_id: uuid.UUID, shard_no: int) -> list[BatchRow]: ...

    async def finish_shard(
        self, alert_id: uuid.UUID, shard_no: int, status: str
    ) -> Counters | None: ...

    async def release_held(self, batch_id: str) -> None: ...


@dataclass(frozen=True)
class SendOptions:
    """The knobs of the sending pipe (their defaults are the settings', in `main`)."""

    batch_size: int
    public_base_url: str
    token_ttl_days: int
    retry_base: float
    retry_cap: float
    error_threshold: int
    progress_seconds: float
    # KakaoTalk unreachable this long: its batches go by SMS/LMS instead (0: never)
    fallback_unreachable_seconds: float = 0.0


class Reachability:
    """How long a dealer has been unreachable: since the first transient failure after its
    last answer, as every pipe of the process sees it."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._since: float | None = None

    def failed(self) -> None:
        """A request got no answer (a 5xx, a timeout, a reset)."""
        if self._since is None:
            self._since = self._clock.now()

    def answered(self) -> None:
        """A request got an answer."""
        self._since = None

    def down_for(self) -> float:
        """Seconds it has been unreachable (0 while it answers)."""
        return 0.0 if self._since is None else self._clock.now() - self._since


class Slot:
    """One request's place among those in flight, given back once by whoever holds it last."""

    def __init__(self, free: asyncio.Semaphore) -> None:
        self._free = free
        self._held = True

    async def __aenter__(self) -> Slot:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.give_back()

    def hand_over(self) -> Slot:
        """The same place, now held by the returned slot (this one gives nothing back)."""
        self._held = False
        return Slot(self._free)

    def give_back(self) -> None:
        """Free the place, once."""
        if self._held:
            self._held = False
            self._free.release()


class InFlight:
    """At most `limit` provider requests of the process in flight at once."""

    def __init__(self, limit: int) -> None:
        self._free = asyncio.Semaphore(limit)

    async def take(self) -> Slot:
        """Wait for a free place; held until the slot gives it back."""
        await self._free.acquire()
        return Slot(self._free)


class AlertCache:
    """The content of the alerts being sent, read once (it does not change once planned)."""

    def __init__(self, store: SenderStore, size: int = CACHED_ALERTS) -> None:
        self.store = store
        self.size = size
        self._alerts: dict[uuid.UUID, AlertInfo] = {}

    async def get(self, alert_id: uuid.UUID) -> AlertInfo | None:
        """The alert's content; None when it is not in the alerts table."""
        info = self._alerts.get(alert_id)
        if info is None:
            info = await self.store.alert(alert_id)
            if info is not None:
                if len(self._alerts) >= self.size:
                    self._alerts.pop(next(iter(self._alerts)))
                self._alerts[alert_id] = info
        return info


class ProgressThrottle:
    """Progress events, at most one per alert every `seconds` from this process."""

    def __init__(
        self, store: SenderStore, publisher: Publisher, seconds: float, clock: Clock
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.seconds = seconds
        self.clock = clock
        self._last: dict[uuid.UUID, float] = {}

    async def progress(self, alert_id: uuid.UUID) -> None:
        """Publish the alert's progress unless one went out less than `seconds` ago."""
        now = self.clock.now()
        if now - self._last.get(alert_id, -self.seconds) < self.seconds:
            return
        if len(self._last) >= CACHED_ALERTS:
            # those older than `seconds` would publish anyway: forgetting them changes nothing
            self._last = {a: t for a, t in self._last.items() if now - t < self.seconds}
        self._last[alert_id] = now
        counters = await self.store.counters(alert_id)
        if counters is not None and counters.status == "sending":
            await self.publisher.lifecycle("progress", alert_id, counters.category, counters)


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class SmsChannel:
    """The second channel: its dealer and its own rate limiter."""

    provider: Provider
    limiter: RateLimiter


@dataclass
class SenderDeps:
    """Everything a shard pipe uses; built once per process by `broadcaster.main`."""

    store: SenderStore
    provider: Provider
    limiter: RateLimiter
    publisher: Publisher
    settler: Settler
    control: Control
    priority: Priority
    metrics: BroadcasterMetrics
    signer: TokenSigner
    in_flight: InFlight
    options: SendOptions
    held_until: HeldUntil
    brand_resume_at: BrandResumeAt
    clock: Clock = field(default_factory=LoopClock)
    wall_clock: WallClock = utc_now
    # the SMS/LMS dealer of the fallback, with its own rate budget (None: no fallback here)
    sms: SmsChannel | None = None
    alerts: AlertCache = field(init=False)
    progress: ProgressThrottle = field(init=False)
    kakao_reachability: Reachability = field(init=False)

    def __post_init__(self) -> None:
        self.alerts = AlertCache(self.store)
        self.kakao_reachability = Reachability(self.clock)
        self.progress = ProgressThrottle(
            self.store, self.publisher, self.options.progress_seconds, self.clock
        )
