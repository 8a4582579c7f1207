"""The planner: turns an alert into shards (keyset ranges of its audience) and publishes them.

The audience is resolved when the alert is planned: the active subscribers matching its
filters, walked along the index `shard_size` at a time, so no list of ids is ever loaded.
Shard rows, the alert's `targeted` count and status are written in one transaction; the
shard tasks and the `started` event are published once it committed, so a sender never
reads a task whose shard is not there. A planner that dies between the commit and the
publish is repaired by the redelivered request: the alert is `sending`, so the tasks of its
unfinished shards and its `started` event go out again (senders skip finished shards, and
the event's id is stable). A scheduled alert has no request to be redelivered: one whose
publish failed is planned again at the next poll, and one whose planner died then is found
by the stall check, which plans it again the same way.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import pydantic

from broadcaster.metrics import BroadcasterMetrics
from broadcaster.publishing import Publisher
from broadcaster.records import AlertPlan, PendingShard, PlanOutcome, PlanState
from common import topics
from common.kafka import ConsumedRecord
from common.messages import AlertRequested, Category, ShardTask

logger = logging.getLogger(__name__)


class PlanStore(Protocol):
    """What the planner needs from the store."""

    async def plan_alert(
        self,
        alert_id: uuid.UUID,
        shard_size: int,
        decide: Callable[[PlanState], PlanOutcome],
    ) -> AlertPlan:
        """Plan one alert in one transaction, as `decide` says from its locked row."""
        ...

    async def due_alerts(self, limit: int = 100) -> list[uuid.UUID]:
        """The scheduled alerts whose `send_at` has come, oldest first."""
        ...

    async def claim_stalled(self, stall_seconds: float) -> list[PendingShard]:
        """Pending shards of sending alerts untouched for `stall_seconds`; touched now."""
        ...

    async def late_alerts(self) -> list[uuid.UUID]:
        """Sending alerts whose `deliver_within` has passed or that will miss it."""
        ...


def decide(state: PlanState, now: datetime) -> PlanOutcome:
    """What planning does with an alert in `state` at `now`."""
    if state.status == "cancelled":
        return "cancelled"
    if state.status in ("completed", "failed"):
        return "finished"
    if state.status == "sending":
        return "republished"
    if state.expires_at is not None and state.expires_at <= now:
        return "expired"
    if state.send_at is not None and state.send_at > now:
        return "scheduled"
    return "planned"


class Planner:
    """Plans requested alerts, and scheduled ones when they fall due."""

    def __init__(
        self,
        store: PlanStore,
        publisher: Publisher,
        metrics: BroadcasterMetrics,
        shard_size: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.metrics = metrics
        self.shard_size = shard_size
        self.clock = clock
        # scheduled alerts whose planning failed, maybe after its commit: planned again first
        self._unannounced: dict[uuid.UUID, None] = {}

    async def handle(self, record: ConsumedRecord) -> PlanOutcome | None:
        """Plan the alert a record of `alerts.requested` names; None when dead-lettered."""
        try:
            request = AlertRequested.model_validate_json(record.value or b"")
        except pydantic.ValidationError as exc:
            await self.publisher.dead_letter(record, f"invalid AlertRequested: {exc}")
            self.metrics.dead_letters.labels(record.topic).inc()
            return None
        outcome = await self.plan(request.alert_id)
        if outcome == "missing":
            await self.publisher.dead_letter(
                record, f"alert '{request.alert_id}' is not in the alerts table"
            )
            self.metrics.dead_letters.labels(record.topic).inc()
            return None
        return outcome

    async def plan(self, alert_id: uuid.UUID) -> PlanOutcome:
        """Plan one alert now, if it is due, not expired, not cancelled, and not planned."""
        plan = await self.store.plan_alert(
            alert_id, self.shard_size, lambda state: decide(state, self.clock())
        )
        category, counters = plan.category, plan.counters
        if category is None or counters is None:  # nothing was written to announce
            return plan.outcome
        if plan.outcome == "expired":
            logger.info("alert %s expired before it was sent", alert_id)
            await self.publisher.lifecycle(
                "failed", alert_id, category, counters, reason="expired before it could be sent"
            )
            return plan.outcome
        tasks = [ShardTask(alert_id=alert_id, shard_no=n, category=category) for n in plan.shards]
        # the tasks and the event together: one wait for the broker, not two
        await asyncio.gather(
            self.publish(tasks), self.publisher.lifecycle("started", alert_id, category, counters)
        )
        if plan.outcome == "republished":
            logger.info(
                "alert %s was planned before; %s shard tasks republished", alert_id, len(tasks)
            )
            return plan.outcome
        if not tasks:
            await self.publisher.lifecycle("completed", alert_id, category, counters)
        self.metrics.planned.labels(category).inc()
        logger.info(
            "alert %s planned: %s subscribers in %s shards",
            alert_id,
            counters.targeted,
            len(tasks),
            extra={"alert_id": str(alert_id)},
        )
        return plan.outcome

    async def publish(self, tasks: list[ShardTask]) -> None:
        """Send shard tasks to their topics (urgent for emergencies) and wait for the acks."""
        producer = self.publisher.producer
        futures = [
            await producer.send(
                _topic(task.category),
                value=task.model_dump_json().encode(),
                key=f"{task.alert_id}:{task.shard_no}".encode(),
            )
            for task in tasks
        ]
        await asyncio.gather(*futures)

    async def plan_due(self) -> int:
        """Plan the scheduled alerts whose `send_at` has come; how many were looked at."""
        due = [*self._unannounced, *await self.store.due_alerts()]
        for alert_id in due:
            # remembered until planned: a failure after the commit leaves it `sending`,
            # no longer due, and planning it again publishes what the failure did not
            self._unannounced[alert_id] = None
            outcome = await self.plan(alert_id)
            del self._unannounced[alert_id]
            logger.info("scheduled alert %s: %s", alert_id, outcome)
        return len(due)

    async def measure_late(self) -> int:
        """Count the sending alerts that miss their `deliver_within` into the late gauge."""
        late = await self.store.late_alerts()
        for alert_id in late:
            logger.warning("alert %s will not be delivered within its deadline", alert_id)
        self.metrics.alerts_late.set(len(late))
        return len(late)

    async def republish_stalled(self, stall_seconds: float) -> int:
        """Plan again the alerts with shards nobody started for `stall_seconds`.

        A safety net: a shard task that was lost would leave its alert `sending` forever.
        Planning a sending alert again publishes the tasks of its unfinished shards and its
        `started` event; a duplicate is harmless (senders skip finished shards and lock
        running ones, and the event's id is stable). How many shards had stalled.
        """
        stalled = await self.store.claim_stalled(stall_seconds)
        for alert_id in dict.fromkeys(s.alert_id for s in stalled):
            await self.plan(alert_id)
        if stalled:
            logger.warning("%s stalled shards: their alerts planned again", len(stalled))
        return len(stalled)


def _topic(category: Category) -> str:
    return topics.BROADCAST_SHARDS_URGENT if category == "emergency" else topics.BROADCAST_SHARDS
