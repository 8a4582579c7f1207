"""What every dealer the sandbox plays decides alike, apart from HTTP and its contract: the
rate limit, the simulated latency, the faults to inject, and the records of what it
accepted (idempotency keys, results for look-up, the ledger, statistics).

`sandbox.dealer` (KakaoTalk) and `sandbox.sms_dealer` (SMS and LMS) each add how they decide
the fate of each recipient of a batch they accept.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from enum import Enum
from typing import Generic, TypeVar

from sandbox.behaviour import DealerBehaviour
from sandbox.clock import Clock
from sandbox.ledger import Ledger
from sandbox.ratelimits import RateLimiter
from sandbox.results import IdempotencyKeys, ResultStore
from sandbox.stats import Stats

SERVER_ERRORS = (500, 502, 503, 504)
# a stable share of numbers is where the CRC-32 of the number falls below a bound
HASH_SPACE = 1 << 32

B = TypeVar("B", bound=DealerBehaviour)


def _limits(behaviour: DealerBehaviour) -> tuple[float, float, float, bool, bool]:
    return (
        behaviour.messages_per_second,
        behaviour.requests_per_second,
        behaviour.burst_seconds,
        behaviour.retry_after_http_date,
        behaviour.ratelimit_headers,
    )


class Fault(Enum):
    """A failure the behaviour injects into a send."""

    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    RESET = "reset"


class BaseDealer(Generic[B]):
    """Rate limit, latency, faults and records of one dealer, under its current behaviour."""

    def __init__(
        self,
        behaviour: B,
        *,
        clock: Clock,
        idempotency_seconds: float,
        stats: Stats,
        pace: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        # what the rate limit's buckets refill by: monotonic seconds, so that setting the
        # dealer's clock (`Clock.set_now`) moves no budget; tests give their own
        self.pace = pace
        self.stats = stats
        self.ledger = Ledger()
        self.results = ResultStore()
        self.idempotency = IdempotencyKeys(idempotency_seconds, clock)
        self._requests = 0
        self.behaviour = behaviour
        self.rng = random.Random(behaviour.seed)
        self.limiter = self._limiter(behaviour)

    def apply(self, behaviour: B) -> None:
        """Behave as `behaviour` says from now on."""
        previous = self.behaviour
        self.behaviour = behaviour
        if _limits(behaviour) != _limits(previous):
            # new buckets start full; unchanged limits keep their buckets' state
            self.limiter = self._limiter(behaviour)
        if behaviour.seed != previous.seed:
            self.rng = random.Random(behaviour.seed)

    def reset(self) -> None:
        """Forget every batch, key, ledger entry and statistic."""
        self.ledger.clear()
        self.results.clear()
        self.idempotency.clear()
        self.stats.reset()
        self.limiter = self._limiter(self.behaviour)

    def _limiter(self, behaviour: DealerBehaviour) -> RateLimiter:
        return RateLimiter(
            behaviour.messages_per_second,
            behaviour.requests_per_second,
            behaviour.burst_seconds,
            self.pace(),
            http_date=behaviour.retry_after_http_date,
            ratelimit_headers=behaviour.ratelimit_headers,
        )

    def latency(self) -> float:
        """Seconds the next send takes, drawn from the latency distribution."""
        b = self.behaviour
        if b.latency == "fixed" or b.latency_ms <= 0:
            return b.latency_ms / 1000
        return self.rng.lognormvariate(0.0, b.lognormal_sigma()) * b.latency_ms / 1000

    def fault(self) -> Fault | None:
        """The fault to inject into the next send, if any."""
        b = self.behaviour
        if b.server_error_share + b.timeout_share + b.reset_share <= 0:
            return None
        draw = self.rng.random()
        if draw < b.server_error_share:
            return Fault.SERVER_ERROR
        if draw < b.server_error_share + b.timeout_share:
            return Fault.TIMEOUT
        if draw < b.server_error_share + b.timeout_share + b.reset_share:
            return Fault.RESET
        return None

    def accepted_before_fault(self) -> bool:
        """Whether a timeout or reset being injected happens after the batch was accepted."""
        return self.rng.random() < self.behaviour.fault_after_accept_share

    def server_error_status(self) -> int:
        """The status of an injected server error."""
        return self.rng.choice(SERVER_ERRORS)

    def request_id(self) -> str:
        """A new request id: the dealer clock's time and a sequence number."""
        self._requests += 1
        return f"{self.clock.datetime():%Y%m%d%H%M%S}{self._requests:010d}"
