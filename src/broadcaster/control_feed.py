"""The control feed: keeps a process's `Control` current from two sources.

Every sender reads all of `alerts.control` (operators' cancel, pause and resume), and reads
the alerts table every poll interval for the alerts it is sending, so a cancel, a pause or
a resume reaches a running broadcast within one poll interval even when its control record
is lost. The gateway commits the table before it publishes the record, so the poll corrects
a pause or resume only when its read began after the last one applied here. Both loops
run under the process's supervisor, which retries them after a Kafka or database error.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import Protocol

import pydantic
from aiokafka import AIOKafkaConsumer

from broadcaster.control import Control
from broadcaster.publishing import Publisher
from common.messages import AlertControl
from common.supervision import TRANSIENT
from common.waiting import wait_or_stop

logger = logging.getLogger(__name__)


class AlertStatuses(Protocol):
    """What the feed reads from the store."""

    async def stopped_among(
        self, alert_ids: Sequence[uuid.UUID]
    ) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
        """Those of `alert_ids` that are cancelled (or failed), and those paused."""
        ...


async def poll(control: Control, store: AlertStatuses) -> None:
    """Read once which alerts running here the alerts table says are cancelled or failed,
    or paused, and make this process agree."""
    watched = control.watched()
    if not watched:
        return
    started = asyncio.get_running_loop().time()
    cancelled, paused = await store.stopped_among(watched)
    for alert_id in cancelled:
        if not control.is_cancelled(alert_id):
            logger.info("alert %s is cancelled in the database", alert_id)
            control.cancel(alert_id)
    for alert_id in watched:
        held = alert_id in paused
        if control.is_paused(alert_id) != held and not control.changed_since(alert_id, started):
            logger.info("alert %s is %s in the database", alert_id, "paused" if held else "resumed")
            control.hold(alert_id, held)


async def poll_forever(
    control: Control, store: AlertStatuses, interval: float, stopping: asyncio.Event
) -> None:
    """`poll` every `interval` seconds until `stopping`; a failed poll is tried again then.

    Not backed off like the supervisor's restarts: a cancel seen through the database
    reaches the broadcast within one interval of the database coming back.
    """
    while True:
        try:
            await poll(control, store)
        except TRANSIENT as exc:
            logger.warning("control poll failed: %r", exc, exc_info=exc)
        if await wait_or_stop(stopping, interval):
            return


async def consume_forever(
    control: Control,
    consumer: AIOKafkaConsumer,
    publisher: Publisher,
    stopping: asyncio.Event,
) -> None:
    """Apply every record of `alerts.control` until `stopping`; poison ones are dead-lettered."""
    while not stopping.is_set():
        batches = await consumer.getmany(timeout_ms=500)
        for records in batches.values():
            for record in records:
                try:
                    command = AlertControl.model_validate_json(record.value or b"")
                except pydantic.ValidationError as exc:
                    await publisher.dead_letter(record, f"invalid AlertControl: {exc}")
                    continue
                logger.info("control %s for alert %s", command.action, command.alert_id)
                control.apply(command)
