"""One batch's provider request, retried until it has an answer, and the look-up of a batch.

Transient failures are retried with backoff; a 429 pauses every request of the process for
its Retry-After (the limiter waits it out), and the quotas a dealer advertises in its answers
go to the limiter; a batch the provider already accepted is looked
up by its id rather than sent again. A request's waits end early when the sender stops or
the alert is cancelled, and then the answer is None: the batch's fate stays unknown, its row
`sending`, and the shard run again looks it up. A look-up's waits end only when the sender
stops: a cancelled alert's batches in flight are still settled from the provider's records.
"""

from __future__ import annotations

import logging
import time

from broadcaster.backoff import backoff_delay
from broadcaster.deps import Reachability
from broadcaster.errors import AlreadyAcceptedError, RetryableProviderError, ThrottledError
from broadcaster.gates import Gate
from broadcaster.limits import RateLimiter
from broadcaster.metrics import BroadcasterMetrics
from broadcaster.providers.base import UNREACHABLE, BatchResult, OutgoingBatch, Provider

logger = logging.getLogger(__name__)

# how long to wait before sending again a batch the provider accepted but cannot find
NOT_FOUND_DELAY = 1.0


def unreachable(batch: OutgoingBatch, seconds: float) -> BatchResult:
    """The answer allim gives itself for a batch the dealer could not be reached for."""
    ids = batch.recipients.subscriber_ids
    reason = f"KakaoTalk unreachable for {seconds:g} s: sent by the fallback"
    return BatchResult(
        batch.batch_id, list(ids), [UNREACHABLE] * len(ids), dict.fromkeys(ids, reason)
    )


class Requests:
    """The provider requests of one shard's pipe."""

    def __init__(
        self,
        provider: Provider,
        limiter: RateLimiter,
        metrics: BroadcasterMetrics,
        gate: Gate,
        retry_base: float,
        retry_cap: float,
        reachability: Reachability | None = None,
        give_up_after: float = 0.0,
    ) -> None:
        self.provider = provider
        self.limiter = limiter
        self.metrics = metrics
        self.gate = gate
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        # the dealer unreachable for `give_up_after` seconds (0: never): the batch is
        # answered UNREACHABLE for every recipient, and they go by the fallback
        self.reachability = reachability
        self.give_up_after = give_up_after

    def backoff(self, attempt: int) -> float:
        """The pause before retry number `attempt`."""
        return backoff_delay(attempt, self.retry_base, self.retry_cap)

    async def send(self, batch: OutgoingBatch) -> BatchResult | None:
        """The provider's answer, retrying transient failures; None when stopped first.

        A `PermanentProviderError` (the request refused as a whole) is raised to the caller.
        """
        metrics, attempt = self.metrics, 0
        while True:
            await self.limiter.acquire(len(batch.recipients))
            if self.gate.control.is_paused(self.gate.alert_id):
                # paused while it waited for the rate budget: it goes after the resume, or
                # stays unsent (its row `sending`, looked up first) when the sender stops
                if await self.gate.wait() in ("halted", "expired"):
                    return None
            if self.gate.control.is_cancelled(self.gate.alert_id):
                # cancelled while it waited for the rate budget: the batch stays unsent (its
                # row 'sending'). A stopping sender still sends it: SIGTERM finishes the
                # batches whose pages it has read.
                return None
            metrics.in_flight.inc()
            started = time.perf_counter()
            try:
                result = await self.provider.send(batch)
                if self.reachability is not None:
                    self.reachability.answered()
                await self.limiter.succeeded(result.quotas)
                metrics.sent.labels(batch.category, batch.channel).inc(len(batch.recipients))
                metrics.window.add(len(batch.recipients))
                return result
            except AlreadyAcceptedError:
                found = await self.look_up(batch.batch_id)
                if found is not None or self.gate.stopping.is_set():
                    return found
                delay, cause = NOT_FOUND_DELAY, "accepted-not-found"
            except ThrottledError as exc:
                metrics.throttled.inc()
                # the limiter pauses every request for Retry-After; acquire() waits it out
                await self.limiter.throttled(exc.retry_after, exc.quotas)
                delay, cause = 0.0, "throttled"
            except RetryableProviderError as exc:
                await self.limiter.server_error()
                if self._unreachable_too_long():
                    return unreachable(batch, self.give_up_after)
                delay = max(exc.retry_after or 0.0, self.backoff(attempt + 1))
                cause = "transient"
                logger.warning("batch %s: %s; retrying", batch.batch_id, exc)
            finally:
                metrics.in_flight.dec()
                metrics.batch_latency.observe(time.perf_counter() - started)
            attempt += 1
            metrics.retries.labels(cause).inc()
            await self.gate.sleep(delay)
            if self.gate.halted():
                return None

    def _unreachable_too_long(self) -> bool:
        if self.reachability is None:
            return False
        self.reachability.failed()
        return self.give_up_after > 0 and self.reachability.down_for() >= self.give_up_after

    async def look_up(self, batch_id: str) -> BatchResult | None:
        """What the provider accepted under `batch_id` (None: nothing, or stopped first)."""
        attempt = 0
        while not self.gate.stopping.is_set():
            try:
                return await self.provider.lookup(batch_id)
            except RetryableProviderError as exc:
                attempt += 1
                self.metrics.retries.labels("lookup").inc()
                logger.warning("look-up of %s failed: %s", batch_id, exc)
                # a cancelled alert's batch is still looked up: its fate is settled, not left
                await self.gate.sleep(self.backoff(attempt), until_cancelled=False)
        return None
