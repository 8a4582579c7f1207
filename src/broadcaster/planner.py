"""The planner: turns an alert into shards (keyset ranges of its audience) and publishes them.

The audience is resolved when the alert is planned: the active subscribers matching its
filters, walked along the index `shard_size` at a time, so no list of ids is ever loaded.
Shard rows, the alert's `targeted` count and status, the shard tasks and the `started`
event are written inside one database transaction that commits after Kafka has the
records: a planner that dies half-way leaves nothing planned, and one that died after the
commit is repaired by the redelivered request (the tasks of unfinished shards go out again;
senders skip finished shards).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import asyncpg
import orjson
import pydantic
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from broadcaster.backoff import backoff_delay
from broadcaster.metrics import BroadcasterMetrics
from broadcaster.publishing import ConsumedRecord, Publisher
from broadcaster.records import Counters
from broadcaster.store import Store, audience_filter
from common import topics
from common.messages import AlertRequested, Audience, Category, ShardTask

logger = logging.getLogger(__name__)

PlanOutcome = Literal[
    "planned", "republished", "scheduled", "expired", "cancelled", "finished", "missing"
]


@dataclass(frozen=True)
class ShardRange:
    """One planned shard: ids `first_id..last_id` (inclusive), `count` active among them."""

    first_id: int
    last_id: int
    count: int


async def walk_shards(
    connection: asyncpg.Connection, audience: Audience, shard_size: int
) -> list[ShardRange]:
    """Split the audience into ranges of `shard_size` active subscribers along the index.

    One statement steps from boundary to boundary (each the `shard_size`-th subscriber after
    the last), rather than a round trip per shard; a second counts the rest.
    """
    conditions, params = audience_filter(audience, 2)
    boundaries = (
        "WITH RECURSIVE walk(last) AS (SELECT 0::bigint UNION ALL SELECT"
        " (SELECT id FROM subscribers WHERE status = 'active' AND id > walk.last"
        f"{conditions} ORDER BY id OFFSET $1 LIMIT 1) FROM walk WHERE walk.last IS NOT NULL)"
        " SELECT last FROM walk WHERE last > 0 ORDER BY last"
    )
    rest = (
        "SELECT count(*) AS n, max(id) AS last FROM subscribers"
        f" WHERE status = 'active' AND id > $1{conditions}"
    )
    shards: list[ShardRange] = []
    after = 0
    for row in await connection.fetch(boundaries, shard_size - 1, *params):
        shards.append(ShardRange(after + 1, row["last"], shard_size))
        after = row["last"]
    row = await connection.fetchrow(rest, after, *params)
    if row["n"]:
        shards.append(ShardRange(after + 1, row["last"], row["n"]))
    return shards


class Planner:
    """Plans requested alerts, and scheduled ones when they fall due."""

    def __init__(
        self,
        store: Store,
        publisher: Publisher,
        metrics: BroadcasterMetrics,
        shard_size: int,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.metrics = metrics
        self.shard_size = shard_size

    @property
    def producer(self) -> AIOKafkaProducer:
        """The producer the shard tasks go out through."""
        return self.publisher.producer

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
        failed: Counters | None = None
        async with self.store.pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                "SELECT status, category, audience::text AS audience, send_at, expires_at"
                " FROM alerts WHERE id = $1 FOR UPDATE",
                alert_id,
            )
            if row is None:
                return "missing"
            status, category = row["status"], row["category"]
            if status == "cancelled":
                return "cancelled"
            if status in ("completed", "failed"):
                return "finished"
            if status == "sending":
                await self._republish(connection, alert_id, category)
                return "republished"
            now = datetime.now(UTC)
            if row["expires_at"] is not None and row["expires_at"] <= now:
                failed = await self._expire(connection, alert_id, category)
            elif row["send_at"] is not None and row["send_at"] > now:
                await connection.execute(
                    "UPDATE alerts SET status = 'scheduled', updated_at = now()"
                    " WHERE id = $1 AND status <> 'scheduled'",
                    alert_id,
                )
                return "scheduled"
            else:
                audience = Audience.model_validate(orjson.loads(row["audience"]))
                await self._plan(connection, alert_id, category, audience)
                return "planned"
        logger.info("alert %s expired before it was sent", alert_id)
        await self.publisher.lifecycle(
            "failed", alert_id, category, failed, reason="expired before it could be sent"
        )
        return "expired"

    async def _expire(
        self, connection: asyncpg.Connection, alert_id: uuid.UUID, category: Category
    ) -> Counters:
        row = await connection.fetchrow(
            "UPDATE alerts SET status = 'failed', status_reason = 'expired before it could be"
            " sent', updated_at = now() WHERE id = $1"
            " RETURNING status, category, targeted, delivered, failed",
            alert_id,
        )
        return Counters(row["status"], category, row["targeted"], row["delivered"], row["failed"])

    async def _plan(
        self,
        connection: asyncpg.Connection,
        alert_id: uuid.UUID,
        category: Category,
        audience: Audience,
    ) -> None:
        ranges = await walk_shards(connection, audience, self.shard_size)
        targeted = sum(r.count for r in ranges)
        await connection.executemany(
            "INSERT INTO shards (alert_id, shard_no, first_id, last_id) VALUES ($1, $2, $3, $4)",
            [(alert_id, no, r.first_id, r.last_id) for no, r in enumerate(ranges)],
        )
        status = "sending" if ranges else "completed"
        await connection.execute(
            "UPDATE alerts SET status = $2::varchar, targeted = $3, started_at = now(),"
            " updated_at = now(), completed_at = CASE WHEN $2::varchar = 'completed' THEN now()"
            " END WHERE id = $1",
            alert_id,
            status,
            targeted,
        )
        tasks = [
            ShardTask(
                alert_id=alert_id,
                shard_no=no,
                shard_count=len(ranges),
                first_id=r.first_id,
                last_id=r.last_id,
                category=category,
            )
            for no, r in enumerate(ranges)
        ]
        counters = Counters(status, category, targeted, 0, 0)
        # published before the commit (a planner that dies here publishes them again), the
        # tasks and the event together: one wait for the broker, not two
        await asyncio.gather(
            self._publish(tasks),
            self.publisher.lifecycle("started", alert_id, category, counters),
        )
        if not ranges:
            await self.publisher.lifecycle("completed", alert_id, category, counters)
        self.metrics.planned.labels(category).inc()
        logger.info(
            "alert %s planned: %s subscribers in %s shards",
            alert_id,
            targeted,
            len(ranges),
            extra={"alert_id": str(alert_id)},
        )

    async def _republish(
        self, connection: asyncpg.Connection, alert_id: uuid.UUID, category: Category
    ) -> None:
        rows = await connection.fetch(
            "SELECT shard_no, first_id, last_id, (SELECT count(*) FROM shards WHERE alert_id = $1)"
            " AS total FROM shards WHERE alert_id = $1 AND status NOT IN ('done', 'cancelled')"
            " ORDER BY shard_no",
            alert_id,
        )
        await self._publish(
            [
                ShardTask(
                    alert_id=alert_id,
                    shard_no=r["shard_no"],
                    shard_count=r["total"],
                    first_id=r["first_id"],
                    last_id=r["last_id"],
                    category=category,
                )
                for r in rows
            ]
        )
        logger.info("alert %s was planned before; %s shard tasks republished", alert_id, len(rows))

    async def _publish(self, tasks: list[ShardTask]) -> None:
        futures = [
            await self.producer.send(
                topics.BROADCAST_SHARDS_URGENT
                if task.category == "emergency"
                else topics.BROADCAST_SHARDS,
                value=task.model_dump_json().encode(),
                key=f"{task.alert_id}:{task.shard_no}".encode(),
            )
            for task in tasks
        ]
        await asyncio.gather(*futures)

    async def plan_due(self) -> int:
        """Plan the scheduled alerts whose `send_at` has come; how many were looked at."""
        rows = await self.store.pool.fetch(
            "SELECT id FROM alerts WHERE status = 'scheduled' AND send_at <= now()"
            " ORDER BY send_at LIMIT 100"
        )
        for row in rows:
            outcome = await self.plan(row["id"])
            logger.info("scheduled alert %s: %s", row["id"], outcome)
        return len(rows)

    async def republish_stalled(self, stall_seconds: float) -> int:
        """Publish again the tasks of shards nobody started for `stall_seconds`.

        A safety net: a shard task that was lost would leave its alert `sending` forever.
        A duplicate task is harmless (senders skip finished shards and lock running ones).
        """
        rows = await self.store.pool.fetch(
            "UPDATE shards s SET updated_at = now() FROM alerts a"
            " WHERE a.id = s.alert_id AND a.status = 'sending' AND s.status = 'pending'"
            " AND s.updated_at < now() - make_interval(secs => $1)"
            " RETURNING s.alert_id, s.shard_no, s.first_id, s.last_id, a.category,"
            " (SELECT count(*) FROM shards t WHERE t.alert_id = s.alert_id) AS total",
            stall_seconds,
        )
        await self._publish(
            [
                ShardTask(
                    alert_id=r["alert_id"],
                    shard_no=r["shard_no"],
                    shard_count=r["total"],
                    first_id=r["first_id"],
                    last_id=r["last_id"],
                    category=r["category"],
                )
                for r in rows
            ]
        )
        if rows:
            logger.warning("%s stalled shard tasks published again", len(rows))
        return len(rows)

    async def due_forever(
        self, interval: float, stopping: asyncio.Event, stall_seconds: float = 300.0
    ) -> None:
        """`plan_due` (and `republish_stalled`) every `interval` seconds until `stopping`."""
        while not stopping.is_set():
            try:
                await self.plan_due()
                await self.republish_stalled(stall_seconds)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, KafkaError) as exc:
                logger.warning("due-alert loop failed: %r", exc, exc_info=exc)
            try:
                await asyncio.wait_for(stopping.wait(), interval)
            except TimeoutError:
                pass

    async def consume(self, consumer: AIOKafkaConsumer, stopping: asyncio.Event) -> None:
        """Plan every request on `alerts.requested`, committing each after it is handled."""
        while not stopping.is_set():
            batches = await consumer.getmany(timeout_ms=500, max_records=50)
            for partition, records in batches.items():
                for record in records:
                    await self._handle_until_done(record, stopping)
                    if stopping.is_set():
                        return
                    try:
                        await consumer.commit({partition: record.offset + 1})
                    except KafkaError as exc:
                        # a rebalance took the partition: the record comes again, and
                        # planning an alert a second time only republishes its shards
                        logger.warning("commit after planning failed: %r", exc)

    async def _handle_until_done(self, record: ConsumedRecord, stopping: asyncio.Event) -> None:
        attempt = 0
        while not stopping.is_set():
            try:
                outcome = await self.handle(record)
                logger.info("request %s@%s: %s", record.partition, record.offset, outcome)
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, KafkaError) as exc:
                attempt += 1
                logger.warning("planning failed, retrying: %r", exc, exc_info=exc)
                try:
                    await asyncio.wait_for(stopping.wait(), backoff_delay(attempt, 0.5, 10.0))
                except TimeoutError:
                    pass
