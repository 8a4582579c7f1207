"""Snapshots of changed alerts on the compacted topic `alerts.stats`, and the per-alert gauges.

Every `interval` seconds the alerts changed since the last tick are read back from
`alert_stats` (the source of truth, whichever consumer applied the change) and published
as `dev.allim.alert.stats` CloudEvents keyed by alert id, so compaction keeps the newest.
A tick that cannot publish keeps its alerts for the next one.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from analytics.metrics import AnalyticsMetrics
from analytics.store import RollupStore
from common import events, topics
from common.events import CloudEvent
from common.messages import AlertStatsData
from common.waiting import wait_or_stop

logger = logging.getLogger(__name__)

SOURCE = "/allim/analytics"


def stats_event(snapshot: AlertStatsData) -> CloudEvent:
    """The `alerts.stats` CloudEvent of one snapshot."""
    return CloudEvent(
        type=events.ALERT_STATS,
        source=SOURCE,
        data=snapshot.model_dump(mode="json"),
        time=snapshot.updated_at,
        subject=str(snapshot.alert_id),
    )


class SnapshotPublisher:
    """Publishes the alerts marked as changed, at most once per interval each."""

    def __init__(
        self,
        store: RollupStore,
        producer: AIOKafkaProducer,
        metrics: AnalyticsMetrics,
        interval: float = 1.0,
    ) -> None:
        self._store = store
        self._producer = producer
        self._metrics = metrics
        self._interval = interval
        self._changed: set[uuid.UUID] = set()

    def mark(self, alert_ids: Iterable[uuid.UUID]) -> None:
        """Publish these alerts at the next tick."""
        self._changed.update(alert_ids)

    async def run(self, stop: asyncio.Event) -> None:
        """Publish every interval until `stop` is set, then once more."""
        while not stop.is_set():
            await wait_or_stop(stop, self._interval)
            await self.flush()

    async def flush(self) -> int:
        """Publish the changed alerts now; the number published."""
        if not self._changed:
            return 0
        changed, self._changed = self._changed, set()
        try:
            snapshots = await self._store.snapshots(changed)
            sent = [
                await self._producer.send(
                    topics.ALERTS_STATS,
                    value=(event := stats_event(s)).value(),
                    key=str(s.alert_id).encode(),
                    headers=event.headers(),
                )
                for s in snapshots
            ]
            await asyncio.gather(*sent)
        except (KafkaError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            logger.warning("publishing %d snapshots failed; retrying", len(changed), exc_info=True)
            self._changed |= changed
            return 0
        for snapshot in snapshots:
            self._metrics.show(snapshot)
        self._metrics.snapshots.inc(len(snapshots))
        return len(snapshots)
