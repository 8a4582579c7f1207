"""A shard's written batches, each from its request to its settlement.

The pipe (`broadcaster.pipe`) writes a batch's row and reads its page; from there a batch is
delivered here: its request sent with retries (`broadcaster.requests`), the answer judged
recipient by recipient (`broadcaster.outcomes`), its delivery event published and the batch
settled (`broadcaster.settling`), and its follow-ups sent: those to try again later, and
those KakaoTalk refused, by SMS/LMS. A batch whose fate is unknown after a crash is looked
up at the provider first and settled from its records, or sent again under the same key.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from broadcaster import outcomes
from broadcaster.batches import ShardBatches
from broadcaster.deps import SenderDeps, Slot
from broadcaster.errors import PermanentProviderError
from broadcaster.gates import Gate, Held, Verdict, due_later
from broadcaster.providers.base import UNREACHABLE, BatchResult, Recipients
from broadcaster.records import AlertInfo, BatchRow
from broadcaster.rendering import Renderer
from broadcaster.requests import Requests
from common.sms_text import ad_held_until

logger = logging.getLogger(__name__)

# the pipe's: to run a batch's work as a task of the shard, and to hold the shard until then
Spawn = Callable[[Coroutine[Any, Any, bool]], None]
Hold = Callable[[datetime | None], None]


class Delivery:
    """Sends the written batches of one shard's pipe and settles each of them once."""

    def __init__(
        self,
        deps: SenderDeps,
        info: AlertInfo,
        shard_no: int,
        gate: Gate,
        batches: ShardBatches,
        render: Renderer,
        stopping: asyncio.Event,
        spawn: Spawn,
        hold: Hold,
    ) -> None:
        self.deps = deps
        self.alert_id: uuid.UUID = info.id
        self.shard_no = shard_no
        self.stopping = stopping
        self._gate = gate
        self._batches = batches
        self._render = render
        self._spawn = spawn
        self._hold = hold
        self._refused = 0
        self.failure: str | None = None  # why the alert is given up, once it is
        options = deps.options
        falls_back = deps.sms is not None and info.sms is not None and bool(info.fallback_codes)
        self._requests = Requests(
            deps.provider,
            deps.limiter,
            deps.metrics,
            gate,
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
                gate,
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

    async def deliver(
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
        if self._refused >= self.deps.options.error_threshold and self.failure is None:
            # stop the alert's next batches now; it is marked failed once this one is settled
            self.failure = f"the provider refused {self._refused} requests in a row"
            self.deps.control.cancel(self.alert_id)
        return outcomes.refused(batch_id, recipients.subscriber_ids, exc.status, str(exc))

    async def recover(self, batch: BatchRow) -> bool:
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
        return await self.deliver(batch, recipients)

    def _not_now(self, verdict: Verdict) -> bool:
        """A batch that is not the shard's next (a follow-up, one sent again after a crash)
        the gate stopped: False when that leaves it unsettled (the sender stops, the alert
        was cancelled or expired), True when it waits for the quiet hours with its shard."""
        if verdict == "expired":
            self.expire()
            return False
        if isinstance(verdict, Held):
            self._hold(verdict.until)
            return True
        return False

    async def _rows_of(self, batch: BatchRow) -> Recipients:
        """A written batch's recipients now; a range split off it goes as a batch of its own."""
        page = await self._batches.rows_of(batch)
        if page.split_off is not None:
            self._spawn(self.recover(page.split_off))
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
        return await self.deliver(batch, recipients)

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
        await self.fail_if_given_up()
        for held_batch in (then, fallback):
            if held_batch is None:
                continue
            if due_later(held_batch.not_before, deps.wall_clock()):
                self._hold(held_batch.not_before)
            else:
                self._spawn(self._send_held(held_batch))
        await deps.progress.progress(self.alert_id)

    def expire(self) -> None:
        """The alert's `expires_at` passed: stop its unsent batches; it fails once settled."""
        if self.failure is None:
            self.failure = (
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

    async def fail_if_given_up(self) -> None:
        """Give the alert up when there is a `failure`: mark it failed and announce it (once,
        whoever comes first)."""
        reason = self.failure
        if reason is None:
            return
        counters = await self.deps.store.fail_alert(self.alert_id, reason)
        if counters is not None:
            logger.error("alert %s failed: %s", self.alert_id, reason)
            await self.deps.publisher.lifecycle(
                "failed", self.alert_id, counters.category, counters, reason=reason
            )
