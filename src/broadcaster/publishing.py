"""What the broadcaster publishes: delivery and lifecycle CloudEvents, dead letters."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from broadcaster.records import Counters
from common import events, topics
from common.events import CloudEvent
from common.kafka import ConsumedRecord, hand_over_dead_letter, hand_over_event, send_event
from common.messages import AlertLifecycleData, Category

SOURCE = "/allim/broadcaster"

LIFECYCLE_TYPES = {
    "started": events.ALERT_STARTED,
    "progress": events.ALERT_PROGRESS,
    "completed": events.ALERT_COMPLETED,
    "cancelled": events.ALERT_CANCELLED,
    "failed": events.ALERT_FAILED,
}


def lifecycle_id(kind: str, alert_id: uuid.UUID, settled: int) -> str:
    """The id of a lifecycle fact: `{alert}:{kind}`, for progress `{alert}:progress:{settled}`.

    An alert starts once and ends once (completed, cancelled or failed), and a fact told
    again (after a crash, by the planner's repair) is told with the same data; progress is
    told at a count of recipients settled (delivered + failed), which only grows, so one
    count is one set of numbers.
    """
    if kind == "progress":
        return f"{alert_id}:progress:{settled}"
    return f"{alert_id}:{kind}"


class Publisher:
    """Publishes the broadcaster's events through one idempotent producer."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def deliveries(self, batches: Sequence[dict[str, Any]]) -> None:
        """The settled fates of batches (`DeliveryBatchData` as JSON); `ce_id` is the batch id.

        All are handed to the producer first and then awaited together, so they share its
        requests and acknowledgements. The data come as plain dicts because this is the hot
        path: one is made for every batch, and validating it again would cost more than
        building it.
        """
        acknowledged = []
        for data in batches:
            event = CloudEvent(
                type=events.DELIVERY_BATCH,
                source=SOURCE,
                id=data["batch_id"],
                subject=data["alert_id"],
                data=data,
            )
            acknowledged.append(
                await hand_over_event(self.producer, topics.DELIVERIES, data["alert_id"], event)
            )
        await asyncio.gather(*acknowledged)

    async def lifecycle(
        self,
        kind: str,
        alert_id: uuid.UUID,
        category: Category,
        counters: Counters | None,
        *,
        reason: str | None = None,
    ) -> None:
        """An alert lifecycle event, under the id of the fact it tells (`lifecycle_id`).

        Each fact is told with the same data whenever it is told again: `started` carries
        the plan (nothing delivered yet), even when the planner's repair tells it once the
        sending is under way; the ends carry the final numbers (see `ShardPipe._announce_end`
        and `Delivery.fail_if_given_up`).
        """
        targeted = counters.targeted if counters else 0
        delivered = counters.delivered if counters and kind != "started" else 0
        failed = counters.failed if counters and kind != "started" else 0
        status = {"started": "sending", "progress": "sending"}.get(kind, kind)
        data = AlertLifecycleData(
            alert_id=alert_id,
            status=status,
            category=category,
            targeted=targeted,
            delivered=delivered,
            failed=failed,
            pending=max(0, targeted - delivered - failed),
            reason=reason,
            test_of=counters.test_of if counters else None,
        )
        event = CloudEvent(
            type=LIFECYCLE_TYPES[kind],
            source=SOURCE,
            id=lifecycle_id(kind, alert_id, delivered + failed),
            subject=str(alert_id),
            data=data.model_dump(mode="json"),
        )
        await send_event(self.producer, topics.ALERT_EVENTS, str(alert_id), event)

    async def dead_letter(self, record: ConsumedRecord, reason: str) -> None:
        """Park a record the broadcaster cannot process, with why, and move on."""
        await (await hand_over_dead_letter(self.producer, record, reason))
