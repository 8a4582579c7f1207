"""What may be sent right now: cancelled and paused alerts, and urgent shards first.

`Control` is the in-memory view a sender checks before every batch. It is fed by the
`alerts.control` topic (every sender reads all of it) and by a periodic read of the alerts
table, so a cancel reaches a running broadcast within one poll interval either way.
`Priority` holds normal shards back while urgent ones are waiting or running.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter

import asyncpg
import pydantic
from aiokafka import AIOKafkaConsumer

from broadcaster.publishing import Publisher
from broadcaster.store import Store
from common.messages import AlertControl

logger = logging.getLogger(__name__)


class Control:
    """Cancelled and paused alerts, as this process knows them."""

    def __init__(self) -> None:
        self._cancelled: set[uuid.UUID] = set()
        self._paused: set[uuid.UUID] = set()
        self._running: Counter[uuid.UUID] = Counter()

    def is_cancelled(self, alert_id: uuid.UUID) -> bool:
        """True once the alert was cancelled (or failed) by anyone."""
        return alert_id in self._cancelled

    def cancel(self, alert_id: uuid.UUID) -> None:
        """Stop the alert's batches that are not sent yet."""
        self._cancelled.add(alert_id)

    def apply(self, command: AlertControl) -> None:
        """Apply an operator's command from `alerts.control`."""
        if command.action == "cancel":
            self.cancel(command.alert_id)
        elif command.action == "pause":
            self._paused.add(command.alert_id)
        else:
            self._paused.discard(command.alert_id)

    def is_paused(self, alert_id: uuid.UUID) -> bool:
        """True while an operator holds the alert paused (and has not cancelled it)."""
        return alert_id in self._paused and alert_id not in self._cancelled

    def running(self, alert_id: uuid.UUID) -> None:
        """A shard of the alert started here: watch it in the database too."""
        self._running[alert_id] += 1

    def finished(self, alert_id: uuid.UUID) -> None:
        """A shard of the alert ended here."""
        self._running[alert_id] -= 1
        if self._running[alert_id] <= 0:
            del self._running[alert_id]

    async def poll(self, store: Store) -> None:
        """Read once which running alerts the alerts table says are cancelled or failed."""
        if not self._running:
            return
        for alert_id in await store.cancelled_among(list(self._running)):
            if alert_id not in self._cancelled:
                logger.info("alert %s is cancelled in the database", alert_id)
                self.cancel(alert_id)

    async def poll_forever(self, store: Store, interval: float) -> None:
        """`poll` every `interval` seconds; database errors are logged and retried."""
        while True:
            try:
                await self.poll(store)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                logger.warning("control poll failed: %r", exc)
            await asyncio.sleep(interval)

    async def consume_forever(self, consumer: AIOKafkaConsumer, publisher: Publisher) -> None:
        """Apply every record of `alerts.control`; poison records go to the dead letters."""
        async for record in consumer:
            try:
                command = AlertControl.model_validate_json(record.value or b"")
            except pydantic.ValidationError as exc:
                await publisher.dead_letter(record, f"invalid AlertControl: {exc}")
                continue
            logger.info("control %s for alert %s", command.action, command.alert_id)
            self.apply(command)


class Priority:
    """Urgent shards first: normal shards wait while any urgent shard is pending or sending."""

    def __init__(self) -> None:
        self._urgent = 0

    @property
    def urgent(self) -> int:
        """Urgent shards pending or running in this process."""
        return self._urgent

    def urgent_arrived(self) -> None:
        """An urgent shard was received: hold normal batches from now on."""
        self._urgent += 1

    def urgent_done(self) -> None:
        """An urgent shard finished or was given up."""
        self._urgent = max(0, self._urgent - 1)
