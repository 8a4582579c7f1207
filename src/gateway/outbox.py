"""The outbox relay: publishes unsent `outbox` rows to Kafka in id order and marks them sent.

Rows are claimed with `SELECT ... FOR UPDATE SKIP LOCKED` inside the transaction that
marks them sent, so several gateway processes share the work and never publish the same
row twice while it is locked. Each relay publishes its batch in id order; across relays,
a row is claimed only once every earlier row with the same key (alert) is sent, so an
alert's `AlertRequested` always precedes its `AlertControl`.

A crash between Kafka's acknowledgement and the commit publishes that batch again on the
next pass (at least once): consumers key their work on the alert id and ignore a repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta

import orjson
from aiokafka.errors import KafkaError
from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from common.models import OutboxEntry
from gateway.metrics import GatewayMetrics
from gateway.state import KafkaLink

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 5.0
# how often the lag gauges are refreshed (a count over the unsent rows)
MEASURE_SECONDS = 1.0
# how often rows sent longer ago than the retention are deleted
PURGE_SECONDS = 300.0


class OutboxRelay:
    """Moves the outbox to Kafka; `run` is the lifespan's background task."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        kafka: KafkaLink,
        metrics: GatewayMetrics,
        *,
        poll_seconds: float = 0.2,
        batch_size: int = 500,
        linger_seconds: float = 0.005,
        retention_hours: float = 24.0,
    ) -> None:
        self._sessions = sessions
        self._kafka = kafka
        self._metrics = metrics
        self._poll_seconds = poll_seconds
        self._batch_size = max(1, batch_size)
        self._linger_seconds = max(0.0, linger_seconds)
        self._retention = timedelta(hours=retention_hours)
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """Look at the outbox now rather than at the next poll (a row was just written)."""
        self._wakeup.set()

    async def run(self) -> None:
        """Publish until cancelled; Kafka or database errors are logged and backed off."""
        backoff = self._poll_seconds
        measured = -MEASURE_SECONDS
        purged = time.monotonic()
        while True:
            try:
                # until Kafka answers, rows wait in the outbox and the gauges show the lag
                published = await self.publish_once() if self._kafka.ready.is_set() else 0
                if time.monotonic() - measured >= MEASURE_SECONDS:
                    await self.measure()
                    measured = time.monotonic()
                if time.monotonic() - purged >= PURGE_SECONDS:
                    await self.purge()
                    purged = time.monotonic()
            except Exception as exc:
                # Kafka and database outages are expected; anything else is a bug, but a
                # dead relay would hold every alert back, so both are retried
                expected = isinstance(exc, KafkaError | SQLAlchemyError | OSError)
                logger.log(
                    logging.WARNING if expected else logging.ERROR,
                    "outbox relay failed; retrying in %.1fs",
                    backoff,
                    exc_info=True,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            backoff = self._poll_seconds
            if published < self._batch_size:
                await self._idle()

    async def publish_once(self) -> int:
        """Claim, publish and mark one batch of unsent rows; the number published."""
        producer = self._kafka.producer
        earlier = aliased(OutboxEntry)
        async with self._sessions() as session, session.begin():
            rows = (
                await session.execute(
                    select(
                        OutboxEntry.id,
                        OutboxEntry.topic,
                        OutboxEntry.key,
                        OutboxEntry.headers,
                        OutboxEntry.payload,
                    )
                    .where(
                        OutboxEntry.sent_at.is_(None),
                        # a row waits until every earlier row of its key is sent, so one
                        # alert's records keep their order even across relays
                        ~exists().where(
                            earlier.key == OutboxEntry.key,
                            earlier.sent_at.is_(None),
                            earlier.id < OutboxEntry.id,
                        ),
                    )
                    .order_by(OutboxEntry.id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            acks = [
                await producer.send(
                    row.topic,
                    value=orjson.dumps(row.payload),
                    key=row.key.encode() if row.key is not None else None,
                    headers=[(k, v.encode()) for k, v in row.headers.items()],
                )
                for row in rows
            ]
            await asyncio.gather(*acks)
            await session.execute(
                update(OutboxEntry)
                .where(OutboxEntry.id.in_([row.id for row in rows]))
                .values(sent_at=func.now())
            )
        self._metrics.outbox_published.inc(len(rows))
        logger.debug("published %d outbox rows up to id %d", len(rows), rows[-1].id)
        return len(rows)

    async def purge(self) -> int:
        """Delete rows sent longer ago than the retention; the number deleted."""
        cutoff = datetime.now(UTC) - self._retention
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                delete(OutboxEntry).where(OutboxEntry.sent_at < cutoff).returning(OutboxEntry.id)
            )
            deleted = len(result.all())
        if deleted:
            logger.info("purged %d outbox rows sent before %s", deleted, cutoff.isoformat())
        return deleted

    async def measure(self) -> None:
        """Set the unsent-count and lag gauges."""
        async with self._sessions() as session:
            count, oldest = (
                await session.execute(
                    select(func.count(), func.min(OutboxEntry.created_at)).where(
                        OutboxEntry.sent_at.is_(None)
                    )
                )
            ).one()
        self._metrics.outbox_unsent.set(count)
        lag = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        self._metrics.outbox_lag.set(max(lag, 0.0))

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), self._poll_seconds)
            # under a burst of POSTs, gather the rows of the next few milliseconds into one
            # batch rather than one transaction and one Kafka round trip per alert
            await asyncio.sleep(self._linger_seconds)
        self._wakeup.clear()
