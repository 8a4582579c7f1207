"""The pipe of one shard: its batches written, read and handed on, until the shard's end.

Exactly once rests on three steps per batch: the batch's row is written `sending`, with its
id range, before its request (`broadcaster.batches`), and its page is read from that range
when it is sent; the request carries the batch id as idempotency key and grouping key; after
the answer the delivery event is published and then the batch, the shard's checkpoint, the
counters and the failures are settled in one statement. The pipe takes the first step, in
the shard's order and one request slot at a time; each batch then goes its own way as a task
of the shard (`broadcaster.delivery`). A shard that starts finds every batch whose fate is
unknown and has it looked up before anything else: found, it is settled without sending;
not found, the same range goes out again under the same key. A batch that could not be
settled (Kafka or the database away) ends the shard `unsettled`, and the dispatcher runs it
again after a pause, to look that batch up.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any, Literal

import asyncpg

from broadcaster.batches import PLAN_AHEAD, ShardBatches
from broadcaster.delivery import Delivery
from broadcaster.deps import SenderDeps
from broadcaster.gates import Gate, Held, due_later
from broadcaster.records import AlertInfo, BatchRow, Counters, ShardRow
from broadcaster.rendering import Renderer
from common.messages import ShardTask

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
        # when quiet hours end, if they stopped this shard before its end
        self.held_until: datetime | None = None
        self._unsettled = False
        self._conflict = False
        self._log = {"alert_id": str(self.alert_id), "shard": self.shard_no}
        # the shard's, once it runs
        self._gate: Gate
        self._render: Renderer
        self._batches: ShardBatches
        self._delivery: Delivery

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
        self._delivery = Delivery(
            deps,
            info,
            self.shard_no,
            self._gate,
            self._batches,
            self._render,
            self.stopping,
            self._spawn,
            self._hold,
        )

    async def _announce_end(self, ended: Counters | None) -> None:
        """Tell the alert's end, completed or cancelled, with its final numbers.

        Only the shard that finished last has `ended`, so the alert's end is one event, told
        again under the same id (and with the same data) only when that shard is run again.
        A failed alert was told by whoever failed it (`Delivery.fail_if_given_up`).
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
            self._spawn(self._delivery.recover(row))
        position, exhausted, pending = shard.position, False, shard.status == "pending"
        planned: deque[BatchRow] = deque()  # written `sending`, not sent yet
        walked = False  # the last planning reached the shard's end
        try:
            # a batch left unsettled (it failed) stops the shard: run again, it looks it up
            while not self._halted() and not self._unsettled:
                verdict = await self._gate.wait()
                if verdict == "expired":
                    self._delivery.expire()
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
                    self._spawn(self._delivery.deliver(batch, recipients, slot.hand_over()))
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
        await self._delivery.fail_if_given_up()
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
