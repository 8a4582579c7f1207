"""The pipe of one shard: stream its subscribers, send their batches, settle each one.

Exactly once rests on three steps per batch: the batch's row is written `sending`, with its
id range, before its request (`PLAN_AHEAD` batches at a time, in one statement), and its
page is read from that range when it is sent; the request carries the batch id as
idempotency key and grouping key; after the answer the delivery event is published and then
the batch, the shard's checkpoint, the counters and the failures are settled in one
statement (`broadcaster.settling`, several batches at a time). A shard that starts finds
every batch whose fate is unknown and looks it up before anything else: found, it is
settled without sending; not found, the same range goes out again under the same key.
A batch that could not be settled (Kafka or the database away) stops its shard, which the
dispatcher runs again after a pause, to look that batch up.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg

from broadcaster.backoff import backoff_delay
from broadcaster.control import Control, Priority
from broadcaster.errors import (
    AlreadyAcceptedError,
    PermanentProviderError,
    RetryableProviderError,
    ThrottledError,
)
from broadcaster.limits import RateLimiter
from broadcaster.metrics import BroadcasterMetrics
from broadcaster.providers.base import (
    BRAND_QUIET_HOURS,
    DELIVERED,
    TEMPORARY_FAILURE,
    BatchResult,
    OutgoingBatch,
    Provider,
    Recipients,
)
from broadcaster.publishing import Publisher
from broadcaster.records import AlertInfo, BatchRow, FollowUp, Settlement, ShardRow
from broadcaster.settling import Settler
from broadcaster.store import Store
from common.messages import Category, ShardTask
from common.tokens import AlertTokenSigner, TokenSigner

logger = logging.getLogger(__name__)


Outcome = Literal["done", "cancelled", "skipped", "stopped", "busy", "held"]
# when a category may be sent again (None: now), and when BRAND messages are accepted again
HeldUntil = Callable[[Category, datetime], datetime | None]
BrandResumeAt = Callable[[datetime], datetime]


# a shard's batches are written `sending` this many at a time, ahead of their requests: one
# statement and one commit for them all, not one per batch. A sender that dies looks up at
# most this many more batches than it had in flight; one that stops removes the unsent rows.
PLAN_AHEAD = 16

# a held batch due within this long is waited for inside the shard's pipe (retries of
# temporary failures); one due later gives the shard's slot back until then
HOLD_IN_PIPE = timedelta(seconds=5)


class ShardConflictError(RuntimeError):
    """A batch id this shard was about to write exists already: someone else sends it."""


class UnsettledBatchError(RuntimeError):
    """A batch of the shard failed before it was settled (Kafka or the database was away)."""


@dataclass(frozen=True)
class SendOptions:
    """The knobs of the sending pipe."""

    batch_size: int = 1000
    public_base_url: str = "http://127.0.0.1:8000"
    token_ttl_days: int = 30
    retry_base: float = 0.2
    retry_cap: float = 30.0
    error_threshold: int = 3
    progress_seconds: float = 2.0


@dataclass
class SenderDeps:
    """Everything a shard pipe uses; built once per process by `broadcaster.main`."""

    store: Store
    provider: Provider
    limiter: RateLimiter
    publisher: Publisher
    settler: Settler
    control: Control
    priority: Priority
    metrics: BroadcasterMetrics
    signer: TokenSigner
    in_flight: asyncio.Semaphore
    options: SendOptions
    held_until: HeldUntil
    brand_resume_at: BrandResumeAt

    def __post_init__(self) -> None:
        self.alerts: dict[uuid.UUID, AlertInfo] = {}
        self._progress_at: dict[uuid.UUID, float] = {}

    async def alert(self, alert_id: uuid.UUID) -> AlertInfo | None:
        """The alert's content (cached: it does not change once planned)."""
        info = self.alerts.get(alert_id)
        if info is None:
            info = await self.store.alert(alert_id)
            if info is not None:
                if len(self.alerts) >= 256:
                    self.alerts.pop(next(iter(self.alerts)))
                self.alerts[alert_id] = info
        return info

    async def progress(self, alert_id: uuid.UUID, category: Category) -> None:
        """Publish a progress event, at most one per alert every `progress_seconds`."""
        now = time.monotonic()
        if now - self._progress_at.get(alert_id, 0.0) < self.options.progress_seconds:
            return
        self._progress_at[alert_id] = now
        counters = await self.store.counters(alert_id)
        if counters is not None and counters.status == "sending":
            await self.publisher.lifecycle("progress", alert_id, category, counters)


class ShardPipe:
    """Sends one shard to the end, or until it is stopped or its alert cancelled."""

    def __init__(
        self,
        deps: SenderDeps,
        task: ShardTask,
        stopping: asyncio.Event,
        draining: Callable[[], None] = lambda: None,
    ) -> None:
        self.deps = deps
        self.task = task
        self.stopping = stopping
        self._draining = draining  # told when the shard sends nothing more
        self.alert_id = task.alert_id
        self.urgent = task.category == "emergency"
        self._tasks: set[asyncio.Task[bool]] = set()
        self._seq = 0
        self._refused = 0
        self._failure: str | None = None  # why this pipe gave the alert up
        # when quiet hours end, if they stopped this shard before its end
        self.held_until: datetime | None = None
        self._unsettled = False
        self._info: AlertInfo
        self._tokens: AlertTokenSigner
        self._connection: asyncpg.Connection  # the shard lock's, for the loop's statements

    # -- the shard ------------------------------------------------------------------------

    async def run(self) -> Outcome:
        """Send the shard; `stopped`, `busy` and `held` (see `held_until`) leave it for later."""
        store = self.deps.store
        async with store.shard_lock(self.alert_id, self.task.shard_no) as connection:
            if connection is None:
                return "busy"
            self._connection = connection
            # the alert before the shard: the planner publishes shard tasks before it commits
            # their rows and the alert's new status together, so a shard missing while the
            # alert was still queued is a plan not committed yet (wait for it), and a shard
            # missing after that is a task of a plan that was rolled back (skip it)
            state = await store.counters(self.alert_id)
            shard = await store.shard(self.alert_id, self.task.shard_no)
            if shard is None and state is not None and state.status in ("queued", "scheduled"):
                # most likely the plan is committing right now: wait for it, not a fixed pause
                await store.wait_for_plan(self.alert_id)
                state = await store.counters(self.alert_id)
                shard = await store.shard(self.alert_id, self.task.shard_no)
            if shard is None and state is not None and state.status in ("queued", "scheduled"):
                return "busy"
            info = await self.deps.alert(self.alert_id)
            if shard is None or info is None or state is None:
                logger.warning(
                    "shard %s:%s is not planned; skipped",
                    self.alert_id,
                    self.task.shard_no,
                    extra={"alert_id": str(self.alert_id), "shard": self.task.shard_no},
                )
                return "skipped"
            self._info = info
            if shard.status in ("done", "cancelled"):
                await self._announce_completed_again(shard)
                return "skipped"
            if state.status in ("cancelled", "failed") or self.deps.control.is_cancelled(
                self.alert_id
            ):
                return await self._cancel()
            self.deps.control.running(self.alert_id)
            try:
                return await self._send(shard)
            finally:
                self.deps.control.finished(self.alert_id)

    async def _announce_completed_again(self, shard: ShardRow) -> None:
        # a sender that died between completing the alert and publishing the event gets the
        # shard again; the event's id is stable, so consumers see it once
        if shard.status != "done":
            return
        counters = await self.deps.store.counters(self.alert_id)
        if counters is not None and counters.status == "completed":
            await self.deps.publisher.lifecycle(
                "completed", self.alert_id, counters.category, counters
            )

    async def _cancel(self) -> Outcome:
        counters = await self.deps.store.counters(self.alert_id)
        await self.deps.store.finish_shard(self.alert_id, self.task.shard_no, "cancelled")
        if counters is not None and counters.status == "cancelled":
            await self.deps.publisher.lifecycle(
                "cancelled", self.alert_id, counters.category, counters
            )
        logger.info("shard %s:%s cancelled", self.alert_id, self.task.shard_no)
        return "cancelled"

    def _halted(self) -> bool:
        return self.stopping.is_set() or self.deps.control.is_cancelled(self.alert_id)

    async def _send(self, shard: ShardRow) -> Outcome:
        info = self._info
        expires = int(info.created_at.timestamp()) + self.deps.options.token_ttl_days * 86400
        self._tokens = self.deps.signer.signer_for(self.alert_id, expires)
        self._seq = shard.next_seq
        for row in await self.deps.store.unsettled(self.alert_id, shard.shard_no):
            if row.status == "held" and self._holds_shard(row.not_before):
                continue
            self._spawn(self._recover(row))
        position, exhausted, pending = shard.position, False, shard.status == "pending"
        planned: deque[BatchRow] = deque()  # written `sending`, not sent yet
        walked = False  # the last planning reached the shard's end
        try:
            # a batch left unsettled (it failed) stops the shard: run again, it looks it up
            while not self._halted() and not self._unsettled:
                await self._gate()
                if self._halted() or self.held_until is not None:
                    break
                # the slot first, then the page: a batch is read at the last moment, so an
                # opt-out made while earlier batches are in flight is honoured
                await self.deps.in_flight.acquire()
                if self._halted():
                    self.deps.in_flight.release()
                    break
                try:
                    if not planned and not walked:
                        planned.extend(await self._plan(shard, position))
                        walked = len(planned) < PLAN_AHEAD
                        position = planned[-1].last_id if planned else position
                    batch = planned.popleft() if planned else None
                    rows = (
                        await self._page(batch, planned, self._connection)
                        if batch is not None
                        else []
                    )
                except BaseException:
                    self.deps.in_flight.release()
                    raise
                if batch is None:
                    self.deps.in_flight.release()
                    exhausted = True
                    break
                if not rows:
                    # everyone in it left the audience since it was planned: nothing to send
                    self.deps.in_flight.release()
                    await self._unplan([batch])
                    continue
                self._spawn(self._deliver(batch.id, self._recipients(rows), holding_slot=True))
                if pending:
                    # no longer pending (see `Planner.republish_stalled`), once the first
                    # request is on its way: it need not wait for this
                    await self.deps.store.start_shard(self.alert_id, shard.shard_no)
                    pending = False
        finally:
            self._draining()
            await self._unplan(planned)
            await self._drain()
        return await self._finish(exhausted)

    async def _plan(self, shard: ShardRow, position: int) -> list[BatchRow]:
        """Write the shard's next `PLAN_AHEAD` batches after `position` (none: exhausted)."""
        first = self._seq
        # numbers reserved before the statement: a follow-up batch may take the next one
        # meanwhile; those the shard's end leaves unused are given back if nobody did
        self._seq += PLAN_AHEAD
        batches, written = await self.deps.store.plan_batches(
            self.alert_id,
            shard.shard_no,
            first,
            self._info.audience,
            position,
            shard.last_id,
            self.deps.options.batch_size,
            PLAN_AHEAD,
            self._connection,
        )
        if not written:
            # the batches written are `sending`: the shard run again looks them up
            raise ShardConflictError(
                f"A batch of shard {self.alert_id}:{shard.shard_no} from {first} exists already."
            )
        if self._seq == first + PLAN_AHEAD:
            self._seq = first + len(batches)
        return batches

    async def _page(
        self,
        batch: BatchRow,
        planned: deque[BatchRow],
        connection: asyncpg.Connection | None,
    ) -> list[asyncpg.Record]:
        """The batch's recipients now; split off into `planned` any beyond a batch."""
        size = self.deps.options.batch_size
        rows = await self.deps.store.page(
            self._info.audience, batch.first_id - 1, batch.last_id, size + 1, connection
        )
        if len(rows) <= size:
            return rows
        # subscribers joined the audience inside its range since it was planned
        seq = self._next_seq()
        rest = BatchRow(self._batch_id(seq), seq, rows[size]["id"], batch.last_id)
        await self.deps.store.split_batch(
            batch, rows[size - 1]["id"], size, rest, len(rows) - size, connection
        )
        planned.appendleft(rest)
        return rows[:size]

    async def _unplan(self, batches: Sequence[BatchRow]) -> None:
        """Remove the rows of batches planned but not sent; looked up later if that fails.

        On the shard lock's connection: should the lock be lost with it, the rows stay, for
        whoever holds the shard now looks them up. Rows that stay leave the shard unsettled,
        so it is run again.
        """
        if not batches:
            return
        try:
            await self.deps.store.unplan([b.id for b in batches], self._connection)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self._unsettled = True
            logger.warning(
                "shard %s:%s: %s batches planned and not sent stay `sending`: %r",
                self.alert_id,
                self.task.shard_no,
                len(batches),
                exc,
                extra={"alert_id": str(self.alert_id), "shard": self.task.shard_no},
            )

    async def _finish(self, exhausted: bool) -> Outcome:
        if self._failure is not None:
            await self._fail(self._failure)
        if self.deps.control.is_cancelled(self.alert_id):
            return await self._cancel()
        if self.stopping.is_set():
            return "stopped"
        if self._unsettled:
            # the dispatcher runs the shard again after a pause; it looks its batches up
            raise UnsettledBatchError(
                f"Shard {self.alert_id}:{self.task.shard_no} left a batch unsettled."
            )
        if self.held_until is not None:
            return "held"
        if not exhausted:
            return "stopped"
        counters = await self.deps.store.finish_shard(self.alert_id, self.task.shard_no, "done")
        if counters is not None:
            await self.deps.publisher.lifecycle(
                "completed", self.alert_id, counters.category, counters
            )
            logger.info(
                "alert %s completed: %s delivered, %s failed of %s",
                self.alert_id,
                counters.delivered,
                counters.failed,
                counters.targeted,
                extra={"alert_id": str(self.alert_id)},
            )
        return "done"

    async def _gate(self) -> None:
        """Wait while urgent shards go first, the alert is paused, or quiet hours hold it.

        An alert whose `expires_at` has passed goes no further: its unsent batches stop,
        and it is marked failed once the batches in flight are settled.
        """
        control, priority = self.deps.control, self.deps.priority
        while not self._halted() and (
            (not self.urgent and priority.urgent) or control.is_paused(self.alert_id)
        ):
            # polled, so that a stop or a cancel ends the wait as quickly as the gate opens
            await self._sleep(0.05)
        if self._expired():
            return
        if self.urgent or self._halted():
            return
        held = self.deps.held_until(self._info.category, datetime.now(UTC))
        if held is not None:
            # the shard gives its slot back and is taken up again when quiet hours end
            logger.info("alert %s held until %s (quiet hours)", self.alert_id, held.isoformat())
            self.held_until = held

    def _holds_shard(self, not_before: datetime | None) -> bool:
        """True when a held batch is due too late to wait for in the pipe.

        A batch the provider refused in BRAND quiet hours (3022) is due at 08:00 KST: the
        shard then stops like one held by allim's own quiet hours (`held_until`), giving its
        slot back, and its held batches are sent when it is run again.
        """
        if not_before is None or not_before - datetime.now(UTC) <= HOLD_IN_PIPE:
            return False
        if self.held_until is None or not_before < self.held_until:
            self.held_until = not_before
        return True

    def _expired(self) -> bool:
        """True, and the alert stopped in this process, once its `expires_at` has passed."""
        expires_at = self._info.expires_at
        if expires_at is None or datetime.now(UTC) < expires_at:
            return False
        if self._failure is None:
            self._failure = "expired before every recipient was sent to"
            logger.warning(
                "alert %s expired while sending; its unsent batches stop",
                self.alert_id,
                extra={"alert_id": str(self.alert_id)},
            )
        self.deps.control.cancel(self.alert_id)
        return True

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq += 1
        return seq

    def _batch_id(self, seq: int) -> str:
        return f"{self.alert_id}:{self.task.shard_no}:{seq}"

    def _spawn(self, work: Coroutine[Any, Any, bool]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[bool]) -> None:
        """A batch's task ended: note when it left its batch unsettled (and why)."""
        self._tasks.discard(task)
        if task.cancelled():
            self._unsettled = True
        elif (error := task.exception()) is not None:
            self._unsettled = True
            logger.error(
                "batch of shard %s:%s failed",
                self.alert_id,
                self.task.shard_no,
                exc_info=error,
                extra={"alert_id": str(self.alert_id), "shard": self.task.shard_no},
            )
        elif task.result() is False:
            self._unsettled = True

    async def _drain(self) -> None:
        """Wait for every batch of this shard that is in flight or waiting to be sent."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    async def _sleep_until(self, when: datetime) -> None:
        await self._sleep((when - datetime.now(UTC)).total_seconds())

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early when the sender stops or the alert is cancelled."""
        deadline = time.monotonic() + seconds
        while not self._halted():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, 0.1))

    # -- batches --------------------------------------------------------------------------

    def _recipients(self, rows: Sequence[asyncpg.Record]) -> Recipients:
        base = self.deps.options.public_base_url.rstrip("/") + "/r/"
        return Recipients.render(rows, base, self._tokens.sign)

    def _outgoing(self, batch_id: str, recipients: Recipients) -> OutgoingBatch:
        info = self._info
        return OutgoingBatch(
            batch_id=batch_id,
            alert_id=self.alert_id,
            category=info.category,
            message_type="BRAND" if info.category == "promotional" else "ALIMTALK",
            title=info.title,
            body=info.body,
            buttons=info.buttons,
            recipients=recipients,
        )

    async def _deliver(
        self, batch_id: str, recipients: Recipients, *, holding_slot: bool = False
    ) -> bool:
        """Send a written batch and settle it; False when stopped before its fate was known."""
        if not holding_slot:
            await self.deps.in_flight.acquire()
        try:
            result = await self._request(self._outgoing(batch_id, recipients))
        except PermanentProviderError as exc:
            result = self._refusal(batch_id, recipients, exc)
        finally:
            self.deps.in_flight.release()
        if result is None:
            return False
        sent = recipients.subscriber_ids
        # numbers and links are not needed to settle: freed now rather than once settled
        del recipients
        await self._settle(batch_id, sent, result)
        return True

    def _refusal(
        self, batch_id: str, recipients: Recipients, exc: PermanentProviderError
    ) -> BatchResult:
        """A refused request: every recipient failed with the HTTP status as their code."""
        logger.error("batch %s refused: %s", batch_id, exc, extra={"batch_id": batch_id})
        self._refused += 1
        if self._refused >= self.deps.options.error_threshold and self._failure is None:
            # stop the alert's next batches now; it is marked failed once this one is settled
            self._failure = f"the provider refused {self._refused} requests in a row"
            self.deps.control.cancel(self.alert_id)
        refused = recipients.subscriber_ids
        return BatchResult(
            batch_id, list(refused), [exc.status] * len(refused), dict.fromkeys(refused, str(exc))
        )

    async def _request(self, batch: OutgoingBatch) -> BatchResult | None:
        """The provider's answer, retrying transient failures; None when stopped first."""
        deps, attempt = self.deps, 0
        while True:
            await deps.limiter.acquire(len(batch.recipients))
            if deps.control.is_cancelled(self.alert_id):
                # cancelled while it waited for the rate budget: the batch stays unsent (its
                # row 'sending'). A stopping sender still sends it: SIGTERM finishes the
                # batches whose pages it has read.
                return None
            deps.metrics.in_flight.inc()
            started = time.perf_counter()
            try:
                result = await deps.provider.send(batch)
                await deps.limiter.succeeded()
                deps.metrics.sent.labels(batch.category).inc(len(batch.recipients))
                deps.metrics.window.add(len(batch.recipients))
                return result
            except AlreadyAcceptedError:
                found = await self._look_up(batch.batch_id)
                if found is not None or self.stopping.is_set():
                    return found
                delay, cause = 1.0, "accepted-not-found"
            except ThrottledError as exc:
                deps.metrics.throttled.inc()
                # the limiter pauses every request for Retry-After; acquire() waits it out
                await deps.limiter.throttled(exc.retry_after)
                delay, cause = 0.0, "throttled"
            except RetryableProviderError as exc:
                await deps.limiter.server_error()
                delay = max(exc.retry_after or 0.0, self._backoff(attempt + 1))
                cause = "transient"
                logger.warning("batch %s: %s; retrying", batch.batch_id, exc)
            finally:
                deps.metrics.in_flight.dec()
                deps.metrics.batch_latency.observe(time.perf_counter() - started)
            attempt += 1
            deps.metrics.retries.labels(cause).inc()
            await self._sleep(delay)
            if self._halted():
                return None

    def _backoff(self, attempt: int) -> float:
        o = self.deps.options
        return backoff_delay(attempt, o.retry_base, o.retry_cap)

    async def _recover(self, batch: BatchRow) -> bool:
        """Settle a batch of unknown fate from the provider's records, or send it again."""
        if batch.status == "held":
            return await self._send_held(batch)
        result = await self._look_up(batch.id)
        if result is None and self.stopping.is_set():
            return False
        if result is not None:
            logger.info("batch %s found at the provider; settled without sending", batch.id)
            await self._settle(batch.id, result.subscriber_ids, result, last_id=batch.last_id)
            return True
        logger.info("batch %s unknown to the provider; sending it again", batch.id)
        recipients = await self._rows_of(batch)
        if not recipients:
            # everyone in it opted out meanwhile: nothing to send, nothing was sent
            await self._settle(batch.id, [], BatchResult(batch.id, [], []), last_id=batch.last_id)
            return True
        return await self._deliver(batch.id, recipients)

    async def _look_up(self, batch_id: str) -> BatchResult | None:
        attempt = 0
        while not self.stopping.is_set():
            try:
                return await self.deps.provider.lookup(batch_id)
            except RetryableProviderError as exc:
                attempt += 1
                self.deps.metrics.retries.labels("lookup").inc()
                logger.warning("look-up of %s failed: %s", batch_id, exc)
                await self._sleep(self._backoff(attempt))
        return None

    async def _rows_of(self, batch: BatchRow) -> Recipients:
        """A written batch's recipients now: those it lists, or those of its id range.

        A range that gained recipients since it was written is split as in the shard's loop;
        the rest, written `sending`, goes the way of any batch of unknown fate.
        """
        if batch.subscriber_ids is not None:
            rows = await self.deps.store.recipients(batch.subscriber_ids)
            return self._recipients(rows)
        rest: deque[BatchRow] = deque()
        rows = await self._page(batch, rest, None)
        for split_off in rest:
            self._spawn(self._recover(split_off))
        return self._recipients(rows)

    async def _send_held(self, batch: BatchRow) -> bool:
        """Send a follow-up batch once its `not_before` has come."""
        if batch.not_before is not None:
            await self._sleep_until(batch.not_before)
        if self._expired() or self._halted():
            return False
        recipients = await self._rows_of(batch)
        await self.deps.store.release_held(batch.id)
        if not recipients:
            await self._settle(batch.id, [], BatchResult(batch.id, [], []), last_id=batch.last_id)
            return True
        return await self._deliver(batch.id, recipients)

    async def _settle(
        self,
        batch_id: str,
        sent: list[int],
        result: BatchResult,
        *,
        last_id: int | None = None,
    ) -> None:
        """Publish the batch's delivery event and settle it (see `broadcaster.settling`).

        `sent` are the subscriber ids the batch went to, in id order (pages and follow-ups
        are read ORDER BY id).
        """
        deps, info = self.deps, self._info
        codes, messages = result.result_codes, result.messages
        if result.subscriber_ids != sent:
            # not in request order, or someone missing: match by subscriber id
            answered = dict(zip(result.subscriber_ids, codes, strict=True))
            codes = [answered.get(i, TEMPORARY_FAILURE) for i in sent]
            messages = messages | {i: "missing from the answer" for i in sent if i not in answered}
        delivered = codes.count(DELIVERED)
        failed_ids: list[int] = []
        failed_codes: list[int] = []
        failed_reasons: list[str] = []
        again: list[int] = []
        held = False
        if delivered < len(codes):
            for subscriber_id, code in zip(sent, codes, strict=True):
                if code == DELIVERED:
                    continue
                if code in (TEMPORARY_FAILURE, BRAND_QUIET_HOURS):
                    again.append(subscriber_id)
                    held = held or code == BRAND_QUIET_HOURS
                else:
                    failed_ids.append(subscriber_id)
                    failed_codes.append(code)
                    failed_reasons.append(f"{code} {messages.get(subscriber_id, '')}"[:200])
        by_reason: dict[str, int] = {}
        for code in failed_codes:
            by_reason[str(code)] = by_reason.get(str(code), 0) + 1
        follow_up = None
        if again:
            now = datetime.now(UTC)
            not_before = (
                deps.brand_resume_at(now)
                if held
                else now + timedelta(seconds=self._backoff(1) + deps.options.retry_base)
            )
            seq = self._next_seq()
            follow_up = FollowUp(self._batch_id(seq), seq, tuple(again), not_before)
            deps.metrics.retries.labels("quiet-hours" if held else "recipient").inc(len(again))
        highest = last_id if last_id is not None else (sent[-1] if sent else 0)
        settlement = Settlement(
            batch_id=batch_id,
            alert_id=self.alert_id,
            shard_no=self.task.shard_no,
            last_id=highest,
            sent=len(sent),
            delivered=delivered,
            failed_ids=failed_ids,
            failed_codes=failed_codes,
            failed_reasons=failed_reasons,
            follow_up=follow_up,
        )
        # the JSON of DeliveryBatchData, built directly (see Publisher.deliveries)
        event = {
            "alert_id": str(self.alert_id),
            "batch_id": batch_id,
            "shard_no": self.task.shard_no,
            "seq": int(batch_id.rsplit(":", 1)[1]),
            "category": info.category,
            "delivered": delivered,
            "failed": len(failed_ids),
            "failed_by_reason": by_reason,
            "subscriber_ids": sent,
            "result_codes": codes,
        }
        await deps.settler.settle(settlement, event)
        deps.metrics.delivered.labels(info.category).inc(delivered)
        for reason, count in by_reason.items():
            deps.metrics.failed.labels(info.category, reason).inc(count)
        if delivered:
            self._refused = 0
        if self._failure is not None:
            await self._fail(self._failure)
        if follow_up is not None and not self._holds_shard(follow_up.not_before):
            self._spawn(
                self._send_held(
                    BatchRow(
                        follow_up.batch_id,
                        follow_up.seq,
                        again[0],
                        again[-1],
                        "held",
                        follow_up.subscriber_ids,
                        follow_up.not_before,
                    )
                )
            )
        await deps.progress(self.alert_id, info.category)

    async def _fail(self, reason: str) -> None:
        """Give up the alert: mark it failed and announce it (once, whoever comes first)."""
        counters = await self.deps.store.fail_alert(self.alert_id, reason)
        if counters is not None:
            logger.error("alert %s failed: %s", self.alert_id, reason)
            await self.deps.publisher.lifecycle(
                "failed", self.alert_id, counters.category, counters, reason=reason
            )
