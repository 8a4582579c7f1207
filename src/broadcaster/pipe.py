"""The pipe of one shard: its batches sent, each settled once, until the shard's end.

Exactly once rests on three steps per batch: the batch's row is written `sending`, with its
id range, before its request (`broadcaster.batches`), and its page is read from that range
when it is sent; the request carries the batch id as idempotency key and grouping key
(`broadcaster.requests`); after the answer (`broadcaster.outcomes`) the delivery event is
published and then the batch, the shard's checkpoint, the counters and the failures are
settled in one statement (`broadcaster.settling`, several batches at a time). A shard that
starts finds every batch whose fate is unknown and looks it up before anything else: found,
it is settled without sending; not found, the same range goes out again under the same key.
A batch that could not be settled (Kafka or the database away) ends the shard `unsettled`,
and the dispatcher runs it again after a pause, to look that batch up.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg

from broadcaster import outcomes
from broadcaster.batches import PLAN_AHEAD, ShardBatches
from broadcaster.deps import SenderDeps, Slot
from broadcaster.errors import PermanentProviderError
from broadcaster.gates import Gate, Held, Verdict, due_later
from broadcaster.providers.base import UNREACHABLE, BatchResult, Recipients
from broadcaster.records import AlertInfo, BatchRow, Counters, ShardRow
from broadcaster.rendering import Renderer
from broadcaster.requests import Requests
from common.messages import ShardTask
from common.sms_text import ad_held_until

logger = logging.getLogger(__name__)

# how a pipe ended: finished (done, cancelled, skipped), or to be run again: `stopped` (the
# sender stops), `busy` (another sender holds the shard), `held` (until `held_until`),
# `unsettled` (a batch's fate is to be looked up), `conflict` (a batch it was about to write
# exists: another sender sends the shard)
Outcome = Literal[
    "done", "cancelled", "skipped", "stopped", "busy", "held", "unsettled", "conflict"
]


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
        self.shard_no = task.shard_no
        self._tasks: set[asyncio.Task[bool]] = set()
        self._refused = 0
        self._failure: str | None = None  # why this pipe gave the alert up
        # when quiet hours end, if they stopped this shard before its end
        self.held_until: datetime | None = None
        self._unsettled = False
        self._conflict = False
        self._log = {"alert_id": str(self.alert_id), "shard": self.shard_no}
        # the shard's, once it runs
        self._gate: Gate
        self._render: Renderer
        self._batches: ShardBatches
        self._requests: Requests

    # -- the shard ------------------------------------------------------------------------

    async def run(self) -> Outcome:
        """Send the shard; all but `done`, `cancelled` and `skipped` leave it for later."""
        store = self.deps.store
        async with store.shard_lock(self.alert_id, self.shard_no) as connection:
            if connection is None:
                return "busy"
            # the planner publishes a shard's task once its plan is committed: a shard that
            # is not planned is a task of a plan that was rolled back
            state = await store.counters(self.alert_id)
            shard = await store.shard(self.alert_id, self.shard_no)
            info = await self.deps.alerts.get(self.alert_id)
            if shard is None or info is None or state is None:
                logger.warning(
                    "shard %s:%s is not planned; skipped",
                    self.alert_id,
                    self.shard_no,
                    extra=self._log,
                )
                return "skipped"
            if shard.status in ("done", "cancelled"):
                # a sender that died between finishing the alert's last shard and telling
                # its end gets the shard again: finished again, it tells the same end
                await self._announce_end(
                    await store.finish_shard(self.alert_id, self.shard_no, shard.status)
                )
                return "skipped"
            if state.status in ("cancelled", "failed") or self.deps.control.is_cancelled(
                self.alert_id
            ):
                return await self._cancel()
            self._start(shard, connection, info)
            self.deps.control.running(self.alert_id)
            if state.paused:
                # paused before this sender started (or restarted): held from the first batch
                self.deps.control.hold(self.alert_id, True)
            try:
                return await self._send(shard)
            finally:
                self.deps.control.finished(self.alert_id)

    def _start(self, shard: ShardRow, connection: asyncpg.Connection, info: AlertInfo) -> None:
        deps, options = self.deps, self.deps.options
        self._gate = Gate(
            self.alert_id,
            info.category,
            info.expires_at,
            self.stopping,
            deps.control,
            deps.priority,
            deps.held_until,
            deps.clock,
            deps.wall_clock,
        )
        self._render = Renderer(info, deps.signer, options.public_base_url, options.token_ttl_days)
        self._batches = ShardBatches(
            deps.store,
            self.alert_id,
            self.shard_no,
            info.audience,
            options.batch_size,
            shard.next_seq,
            connection,
        )
        falls_back = deps.sms is not None and info.sms is not None and bool(info.fallback_codes)
        self._requests = Requests(
            deps.provider,
            deps.limiter,
            deps.metrics,
            self._gate,
            options.retry_base,
            options.retry_cap,
            deps.kakao_reachability,
            options.fallback_unreachable_seconds if falls_back else 0.0,
        )
        # the fallback's requests, when the alert has an SMS text and this process a dealer
        self._sms_requests = (
            Requests(
                deps.sms.provider,
                deps.sms.limiter,
                deps.metrics,
                self._gate,
                options.retry_base,
                options.retry_cap,
            )
            if deps.sms is not None and info.sms is not None
            else None
        )
        # a batch KakaoTalk could not be reached for (UNREACHABLE) falls back like a refusal
        self._fallback_codes = (
            info.fallback_codes | {UNREACHABLE} if self._sms_requests is not None else frozenset()
        )

    def _requests_of(self, batch: BatchRow) -> Requests:
        """The requests of the channel `batch` goes by."""
        if batch.channel == "sms":
            if self._sms_requests is None:
                raise RuntimeError(
                    f"batch {batch.id} goes by SMS, but this sender has no SMS dealer "
                    "(ALLIM_BROADCASTER_SMS_BASE_URL) or the alert no SMS text"
                )
            return self._sms_requests
        return self._requests

    async def _announce_end(self, ended: Counters | None) -> None:
        """Tell the alert's end, completed or cancelled, with its final numbers.

        Only the shard that finished last has `ended`, so the alert's end is one event, told
        again under the same id (and with the same data) only when that shard is run again.
        A failed alert was told by whoever failed it (`_fail`).
        """
        if ended is None or ended.status not in ("completed", "cancelled"):
            return
        await self.deps.publisher.lifecycle(
            ended.status, self.alert_id, ended.category, ended, reason=ended.reason
        )
        logger.info(
            "alert %s %s: %s delivered, %s failed of %s",
            self.alert_id,
            ended.status,
            ended.delivered,
            ended.failed,
            ended.targeted,
            extra={"alert_id": str(self.alert_id)},
        )

    async def _cancel(self) -> Outcome:
        await self._announce_end(
            await self.deps.store.finish_shard(self.alert_id, self.shard_no, "cancelled")
        )
        logger.info("shard %s:%s cancelled", self.alert_id, self.shard_no)
        return "cancelled"

    def _halted(self) -> bool:
        return self._gate.halted()

    async def _send(self, shard: ShardRow) -> Outcome:
        now = self.deps.wall_clock()
        for row in await self.deps.store.unsettled(self.alert_id, shard.shard_no):
            if row.status == "held" and due_later(row.not_before, now):
                # due at 08:00 KST (BRAND quiet hours, 3022): the shard gives its slot back
                # until then, and its held batches are sent when it is run again
                self._hold(row.not_before)
                continue
            self._spawn(self._recover(row))
        position, exhausted, pending = shard.position, False, shard.status == "pending"
        planned: deque[BatchRow] = deque()  # written `sending`, not sent yet
        walked = False  # the last planning reached the shard's end
        try:
            # a batch left unsettled (it failed) stops the shard: run again, it looks it up
            while not self._halted() and not self._unsettled:
                verdict = await self._gate.wait()
                if verdict == "expired":
                    self._expire()
                    break
                if isinstance(verdict, Held):
                    # the shard gives its slot back and is taken up again when they end
                    logger.info(
                        "alert %s held until %s (quiet hours)",
                        self.alert_id,
                        verdict.until.isoformat(),
                        extra=self._log,
                    )
                    self._hold(verdict.until)
                    if pending:
                        # taken up, though it sends later: the stall check must not publish
                        # it again (each copy would be held too, and counted as waiting)
                        await self.deps.store.start_shard(self.alert_id, shard.shard_no)
                    break
                if verdict == "halted" or self.held_until is not None:
                    break
                # the slot first, then the page: a batch is read at the last moment, so an
                # opt-out made while earlier batches are in flight is honoured
                async with await self.deps.in_flight.take() as slot:
                    if self._halted():
                        break
                    if not planned and not walked:
                        plan = await self._batches.plan(position, shard.last_id)
                        if plan.conflict:
                            self._conflict = True
                            break
                        planned.extend(plan.batches)
                        walked = len(plan.batches) < PLAN_AHEAD
                        position = planned[-1].last_id if planned else position
                    if not planned:
                        exhausted = True
                        break
                    batch = planned.popleft()
                    page = await self._batches.page(batch)
                    if page.split_off is not None:
                        planned.appendleft(page.split_off)
                    if not page.rows:
                        # everyone in it left the audience since it was planned
                        await self._unplan([batch])
                        continue
                    recipients = self._render.recipients(page.rows)
                    self._spawn(self._deliver(batch, recipients, slot.hand_over()))
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

    async def _unplan(self, batches: Sequence[BatchRow]) -> None:
        """Remove the rows of batches planned but not sent; those that stay leave it unsettled."""
        if not await self._batches.unplan(batches):
            self._unsettled = True

    async def _finish(self, exhausted: bool) -> Outcome:
        if self._conflict:
            logger.warning(
                "shard %s:%s: a batch it was about to write exists; another sender has it",
                self.alert_id,
                self.shard_no,
                extra=self._log,
            )
            return "conflict"
        if self._failure is not None:
            await self._fail(self._failure)
        if self.deps.control.is_cancelled(self.alert_id):
            return await self._cancel()
        if self.stopping.is_set():
            return "stopped"
        if self._unsettled:
            logger.warning(
                "shard %s:%s left a batch unsettled; it is looked up when the shard runs again",
                self.alert_id,
                self.shard_no,
                extra=self._log,
            )
            return "unsettled"
        if self.held_until is not None:
            return "held"
        if not exhausted:
            return "stopped"
        await self._announce_end(
            await self.deps.store.finish_shard(self.alert_id, self.shard_no, "done")
        )
        return "done"

    def _hold(self, until: datetime | None) -> None:
        """Stop the shard before its end until `until` (the earliest such time counts)."""
        if until is not None and (self.held_until is None or until < self.held_until):
            self.held_until = until

    def _expire(self) -> None:
        """The alert's `expires_at` passed: stop its unsent batches; it fails once settled."""
        if self._failure is None:
            self._failure = (
                "expired while paused, before every recipient was sent to"
                if self.deps.control.is_paused(self.alert_id)
                else "expired before every recipient was sent to"
            )
            logger.warning(
                "alert %s expired while sending; its unsent batches stop",
                self.alert_id,
                extra={"alert_id": str(self.alert_id)},
            )
        self.deps.control.cancel(self.alert_id)

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
                self.shard_no,
                exc_info=error,
                extra=self._log,
            )
        elif task.result() is False:
            self._unsettled = True

    async def _drain(self) -> None:
        """Wait for every batch of this shard that is in flight or waiting to be sent."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    # -- batches --------------------------------------------------------------------------

    async def _deliver(
        self, batch: BatchRow, recipients: Recipients, slot: Slot | None = None
    ) -> bool:
        """Send a written batch and settle it; False when stopped before its fate was known."""
        if slot is None:
            slot = await self.deps.in_flight.take()
        async with slot:
            try:
                outgoing = self._render.outgoing(batch.id, recipients, batch.channel)
                result = await self._requests_of(batch).send(outgoing)
            except PermanentProviderError as exc:
                result = self._refusal(batch.id, recipients, exc)
        if result is None:
            return False
        sent = recipients.subscriber_ids
        # numbers and links are not needed to settle: freed now rather than once settled
        del recipients
        await self._settle(batch, sent, result)
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
        return outcomes.refused(batch_id, recipients.subscriber_ids, exc.status, str(exc))

    async def _recover(self, batch: BatchRow) -> bool:
        """Settle a batch of unknown fate from the provider's records, or send it again."""
        if batch.status == "held":
            return await self._send_held(batch)
        result = await self._requests_of(batch).look_up(batch.id)
        if result is None and self.stopping.is_set():
            return False
        if result is not None:
            logger.info("batch %s found at the provider; settled without sending", batch.id)
            await self._settle(batch, result.subscriber_ids, result, last_id=batch.last_id)
            return True
        verdict = await self._gate.wait()
        if verdict != "open":
            return self._not_now(verdict)  # left `sending`: run again, it is looked up again first
        logger.info("batch %s unknown to the provider; sending it again", batch.id)
        recipients = await self._rows_of(batch)
        if not recipients:
            # everyone in it opted out meanwhile: nothing to send, nothing was sent
            await self._settle(batch, [], BatchResult(batch.id, [], []), last_id=batch.last_id)
            return True
        return await self._deliver(batch, recipients)

    def _not_now(self, verdict: Verdict) -> bool:
        """A batch that is not the shard's next (a follow-up, one sent again after a crash)
        the gate stopped: False when that leaves it unsettled (the sender stops, the alert
        was cancelled or expired), True when it waits for the quiet hours with its shard."""
        if verdict == "expired":
            self._expire()
            return False
        if isinstance(verdict, Held):
            self._hold(verdict.until)
            return True
        return False

    async def _rows_of(self, batch: BatchRow) -> Recipients:
        """A written batch's recipients now; a range split off it goes as a batch of its own."""
        page = await self._batches.rows_of(batch)
        if page.split_off is not None:
            self._spawn(self._recover(page.split_off))
        return self._render.recipients(page.rows)

    async def _send_held(self, batch: BatchRow) -> bool:
        """Send a follow-up batch once its `not_before` has come (and no pause holds it)."""
        if batch.not_before is not None:
            await self._gate.sleep_until(batch.not_before)
        verdict = await self._gate.wait()
        if verdict != "open":
            return self._not_now(verdict)
        recipients = await self._rows_of(batch)
        await self.deps.store.release_held(batch.id)
        if not recipients:
            await self._settle(batch, [], BatchResult(batch.id, [], []), last_id=batch.last_id)
            return True
        return await self._deliver(batch, recipients)

    async def _settle(
        self, batch: BatchRow, sent: list[int], result: BatchResult, *, last_id: int | None = None
    ) -> None:
        """Publish the batch's delivery event and settle it (see `broadcaster.settling`).

        `sent` are the subscriber ids the batch went to, in id order (pages and follow-ups
        are read ORDER BY id).
        """
        deps, category = self.deps, self._render.info.category
        # an SMS batch falls back to nothing more: its refusals are failures
        codes = self._fallback_codes if batch.channel == "kakao" else frozenset()
        verdict = outcomes.judge(sent, result, codes)
        then = fallback = None
        if verdict.again:
            now = deps.wall_clock()
            not_before = (
                deps.brand_resume_at(now)
                if verdict.quiet_hours and batch.channel == "kakao"
                else now + timedelta(seconds=self._requests.backoff(1) + deps.options.retry_base)
            )
            seq = self._batches.next_seq()
            then = outcomes.follow_up(
                verdict, self._batches.batch_id(seq), seq, not_before, batch.channel
            )
            cause = "quiet-hours" if verdict.quiet_hours else "recipient"
            deps.metrics.retries.labels(cause).inc(len(verdict.again))
        if verdict.fallback:
            seq = self._batches.next_seq()
            now = deps.wall_clock()
            # an advertising text waits for 08:00-21:00 (Korean time), as the law asks
            held = ad_held_until(now) if category == "promotional" else None
            fallback = outcomes.fallback_batch(
                verdict, self._batches.batch_id(seq), seq, held or now
            )
            deps.metrics.fallbacks.inc(len(verdict.fallback))
        await deps.settler.settle(
            outcomes.settlement(
                batch, self.alert_id, self.shard_no, sent, verdict, then, last_id, fallback
            ),
            outcomes.delivery_event(
                batch,
                self.alert_id,
                self.shard_no,
                category,
                sent,
                verdict,
                self._render.info.test_of,
            ),
        )
        deps.metrics.delivered.labels(category, batch.channel).inc(verdict.delivered)
        for reason, count in verdict.failed_by_reason.items():
            deps.metrics.failed.labels(category, batch.channel, reason).inc(count)
        if verdict.delivered:
            self._refused = 0
        if self._failure is not None:
            await self._fail(self._failure)
        for held_batch in (then, fallback):
            if held_batch is None:
                continue
            if due_later(held_batch.not_before, deps.wall_clock()):
                self._hold(held_batch.not_before)
            else:
                self._spawn(self._send_held(held_batch))
        await deps.progress.progress(self.alert_id)

    async def _fail(self, reason: str) -> None:
        """Give up the alert: mark it failed and announce it (once, whoever comes first)."""
        counters = await self.deps.store.fail_alert(self.alert_id, reason)
        if counters is not None:
            logger.error("alert %s failed: %s", self.alert_id, reason)
            await self.deps.publisher.lifecycle(
                "failed", self.alert_id, counters.category, counters, reason=reason
            )
