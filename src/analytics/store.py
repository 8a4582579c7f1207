"""The rollups in PostgreSQL, and how one poll of events is applied to them exactly once.

`apply` runs in ONE transaction: the poll's taps are copied into a temporary table and their
event ids inserted into `processed_events` with ON CONFLICT DO NOTHING; when fewer ids were
new than the poll holds, the taps seen before are deleted from the temporary table, so only
new taps count.
Delivered batches and lifecycle events are deduplicated the same way through a table of ids.
The new taps are turned into first readers of tokens (`token_first_readers`), distinct
readers (`alert_readers`) and per-minute reads with INSERT ... ON CONFLICT DO NOTHING
RETURNING, so a reader is counted only when its row is new.
A delivery event says its channel: the SMS/LMS fallback's deliveries are counted apart, and
the subscribers it reached are kept (`alert_sms_reached`), so a reader whose first tap was on
a link SMS sent counts for that channel. Whichever analytics sees first, the tap or the
delivery, counts them: a new reader of a link already reached, or a link reached whose reader
came before. A poll holds a lock per alert for this (shared for taps, exclusive for SMS
deliveries), so two consumers applying both at once cannot each miss the other's rows.
The per-alert rollup (`alert_stats`) and the time series (`alert_reads_minute`) are then
upserted with the deltas.
Kafka offsets are committed by the caller after this transaction, so a crash anywhere
redelivers events that either were not applied at all or are recognised by their id.

Definitions (per alert):
- readers: distinct reader ids that tapped any of the alert's links.
- first_readers: links (one per subscriber) that were opened, i.e. tokens with a first reader.
- forwarded_readers: readers whose first tap of the alert was on a link whose first reader is
  someone else: people the alert reached through a forward.
read_rate and forward_rate are defined once, in `reports.figures`, for every view.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg
import orjson

from analytics.records import Decoded, Delivery, Lifecycle
from analytics.statements import (
    DROP_SEEN_TAPS,
    FORGET,
    LOCK_ALERT,
    LOCK_ALERT_SHARED,
    NEW_EVENT_IDS,
    NEW_READERS,
    NEW_SMS_REACHED,
    NEW_TAPS,
    NEW_TOKEN_READERS,
    READERS_OF_LINKS,
    RECENT,
    SNAPSHOT,
    TAPPED,
    TAPS_BY_MINUTE,
    TEMP_TABLES,
    UPSERT_MINUTES,
    UPSERT_STATS,
)
from common import events
from common.messages import DELIVERED_CODES, AlertStatsData
from reports.figures import Counts, forward_rate, read_rate

ENDED = frozenset({events.ALERT_COMPLETED, events.ALERT_CANCELLED, events.ALERT_FAILED})
UNKNOWN_CATEGORY = "unknown"


@dataclass
class AlertDelta:
    """What one poll added to one alert's rollup."""

    category: str | None = None
    targeted: int = 0
    delivered: int = 0
    failed: int = 0
    failed_by_reason: Counter[str] = field(default_factory=Counter)
    readers: int = 0
    first_readers: int = 0
    forwarded_readers: int = 0
    taps: int = 0
    status: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    first_delivery_at: datetime | None = None
    last_delivery_at: datetime | None = None
    # the SMS/LMS fallback's part of delivered, failed and readers
    sms_delivered: int = 0
    sms_failed: int = 0
    sms_readers: int = 0


@dataclass
class Applied:
    """The outcome of one `apply`: new and duplicate events, and each changed alert's delta."""

    new_events: int = 0
    duplicates: int = 0
    alerts: dict[uuid.UUID, AlertDelta] = field(default_factory=dict)


async def prepare_connection(connection: asyncpg.Connection) -> None:
    """Create the session's temporary tables (a pool's `init` callback)."""
    await connection.execute(TEMP_TABLES)


def _earliest(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b < a else a


def _latest(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def _add_deliveries(
    deltas: dict[uuid.UUID, AlertDelta], deliveries: Iterable[Delivery]
) -> list[tuple[uuid.UUID, int]]:
    """Add the deliveries to the deltas; the (alert, subscriber) pairs SMS/LMS reached."""
    reached: list[tuple[uuid.UUID, int]] = []
    for delivery in deliveries:
        data = delivery.data
        delta = deltas.setdefault(data.alert_id, AlertDelta())
        delta.category = data.category
        delta.delivered += data.delivered
        delta.failed += data.failed
        delta.failed_by_reason.update(data.failed_by_reason)
        delta.first_delivery_at = _earliest(delta.first_delivery_at, delivery.time)
        delta.last_delivery_at = _latest(delta.last_delivery_at, delivery.time)
        if data.channel == "sms":
            delta.sms_delivered += data.delivered
            delta.sms_failed += data.failed
            reached += (
                (data.alert_id, subscriber_id)
                for subscriber_id, code in zip(data.subscriber_ids, data.result_codes, strict=True)
                if code in DELIVERED_CODES
            )
    return reached


def _add_lifecycle(deltas: dict[uuid.UUID, AlertDelta], changes: Iterable[Lifecycle]) -> None:
    for change in changes:
        data = change.data
        delta = deltas.setdefault(data.alert_id, AlertDelta())
        delta.category = data.category
        delta.targeted = max(delta.targeted, data.targeted)
        delta.status = data.status
        if change.type == events.ALERT_STARTED:
            delta.started_at = _earliest(delta.started_at, change.time)
        elif change.type in ENDED:
            delta.completed_at = _latest(delta.completed_at, change.time)


class RollupStore:
    """Applies polls of events to the rollups and reads snapshots back."""

    def __init__(self, pool: asyncpg.Pool, consumer: str) -> None:
        self._pool = pool
        self._consumer = consumer

    async def apply(self, decoded: Decoded) -> Applied:
        """Count the events of `decoded` not applied before, in one transaction."""
        applied = Applied(duplicates=decoded.repeated)
        if not decoded.event_ids():
            return applied
        deltas: dict[uuid.UUID, AlertDelta] = {}
        async with self._pool.acquire() as connection, connection.transaction():
            await _lock_alerts(connection, decoded)
            others = [d.event_id for d in decoded.deliveries]
            others += [e.event_id for e in decoded.lifecycle]
            if others:
                await connection.copy_records_to_table(
                    "analytics_ids", records=[(i,) for i in others], columns=["event_id"]
                )
                rows = await connection.fetch(NEW_EVENT_IDS, self._consumer)
                new_ids = {r["event_id"] for r in rows}
                applied.new_events += len(new_ids)
                applied.duplicates += len(others) - len(new_ids)
                reached = _add_deliveries(
                    deltas, (d for d in decoded.deliveries if d.event_id in new_ids)
                )
                _add_lifecycle(deltas, (e for e in decoded.lifecycle if e.event_id in new_ids))
                if reached:
                    await _count_sms_reached(connection, reached, deltas)
            minutes: dict[tuple[uuid.UUID, datetime], list[int]] = {}
            if decoded.taps:
                await self._apply_taps(connection, decoded, applied, deltas, minutes)
            if minutes:
                keys = sorted(minutes)
                await connection.execute(
                    UPSERT_MINUTES,
                    [k[0] for k in keys],
                    [k[1] for k in keys],
                    [minutes[k][0] for k in keys],
                    [minutes[k][1] for k in keys],
                )
            if deltas:
                await self._upsert_stats(connection, deltas)
        applied.alerts = deltas
        return applied

    async def _apply_taps(
        self,
        connection: asyncpg.Connection,
        decoded: Decoded,
        applied: Applied,
        deltas: dict[uuid.UUID, AlertDelta],
        minutes: dict[tuple[uuid.UUID, datetime], list[int]],
    ) -> None:
        await connection.copy_records_to_table(
            "analytics_taps",
            records=[
                (seq, t.event_id, t.alert_id, t.subscriber_id, t.reader_id, t.tapped_at)
                for seq, t in enumerate(decoded.taps)
            ],
            columns=["seq", "event_id", "alert_id", "subscriber_id", "reader_id", "tapped_at"],
        )
        fresh: int = await connection.fetchval(NEW_TAPS, self._consumer)
        seen = len(decoded.taps) - fresh
        applied.new_events += fresh
        applied.duplicates += seen
        if not fresh:
            return
        if seen:
            await connection.execute(DROP_SEEN_TAPS, self._consumer)
        for row in await connection.fetch(NEW_TOKEN_READERS):
            deltas.setdefault(row["alert_id"], AlertDelta()).first_readers += row["n"]
        for row in await connection.fetch(NEW_READERS):
            delta = deltas.setdefault(row["alert_id"], AlertDelta())
            delta.readers += row["readers"]
            delta.forwarded_readers += row["forwarded"]
            delta.sms_readers += row["sms"]
            minutes.setdefault((row["alert_id"], row["minute"]), [0, 0])[1] += row["readers"]
        for row in await connection.fetch(TAPS_BY_MINUTE):
            deltas.setdefault(row["alert_id"], AlertDelta()).taps += row["taps"]
            minutes.setdefault((row["alert_id"], row["minute"]), [0, 0])[0] += row["taps"]

    async def _upsert_stats(
        self, connection: asyncpg.Connection, deltas: dict[uuid.UUID, AlertDelta]
    ) -> None:
        # a fixed order, so two consumers meeting on the same alerts during a rebalance
        # lock the rows in the same order and cannot deadlock
        order = sorted(deltas)
        values = [deltas[a] for a in order]
        rows = await connection.fetch(
            UPSERT_STATS,
            order,
            [d.category for d in values],
            [d.targeted for d in values],
            [d.delivered for d in values],
            [d.failed for d in values],
            [_json_counts(d.failed_by_reason) for d in values],
            [d.readers for d in values],
            [d.first_readers for d in values],
            [d.forwarded_readers for d in values],
            [d.taps for d in values],
            [d.status for d in values],
            [d.started_at for d in values],
            [d.completed_at for d in values],
            [d.first_delivery_at for d in values],
            [d.last_delivery_at for d in values],
            [d.sms_delivered for d in values],
            [d.sms_failed for d in values],
            [d.sms_readers for d in values],
        )
        for row in rows:
            deltas[row["alert_id"]].category = row["category"]

    async def snapshots(self, alert_ids: Iterable[uuid.UUID]) -> list[AlertStatsData]:
        """The current rollup of each of `alert_ids` that has one."""
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(SNAPSHOT, list(alert_ids))
        return [
            AlertStatsData(
                alert_id=r["alert_id"],
                category=r["category"],
                targeted=r["targeted"],
                delivered=r["delivered"],
                failed=r["failed"],
                failed_by_reason=_counts(r["failed_by_reason"]),
                readers=r["readers"],
                first_readers=r["first_readers"],
                forwarded_readers=r["forwarded_readers"],
                taps=r["taps"],
                read_rate=read_rate(r["readers"], r["delivered"]),
                forward_rate=forward_rate(r["forwarded_readers"], r["readers"]),
                updated_at=r["updated_at"],
                channels=Counts.of_row(r).by_channel(),
            )
            for r in rows
        ]

    async def forget(self, older_than: timedelta) -> int:
        """Delete this consumer's event ids applied more than `older_than` ago; how many."""
        async with self._pool.acquire() as connection:
            status: str = await connection.execute(FORGET, self._consumer, older_than)
        return int(status.split()[-1])

    async def recent(self, limit: int) -> list[uuid.UUID]:
        """The `limit` most recently changed alerts, newest first."""
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(RECENT, limit)
        return [r["alert_id"] for r in rows]


async def _lock_alerts(connection: asyncpg.Connection, decoded: Decoded) -> None:
    """Lock each alert of the poll's SMS deliveries (exclusive) and taps (shared), in one
    order for every consumer, so no two can deadlock."""
    exclusive = {d.data.alert_id for d in decoded.deliveries if d.data.channel == "sms"}
    shared = {t.alert_id for t in decoded.taps} - exclusive
    for alert_id in sorted(exclusive | shared):
        statement = LOCK_ALERT if alert_id in exclusive else LOCK_ALERT_SHARED
        await connection.execute(statement, alert_id)


async def _count_sms_reached(
    connection: asyncpg.Connection,
    reached: list[tuple[uuid.UUID, int]],
    deltas: dict[uuid.UUID, AlertDelta],
) -> None:
    """Keep the subscribers SMS reached; count the readers their links already had."""
    rows = await connection.fetch(NEW_SMS_REACHED, [a for a, _ in reached], [s for _, s in reached])
    by_alert: dict[uuid.UUID, list[int]] = {}
    for row in rows:
        by_alert.setdefault(row["alert_id"], []).append(row["subscriber_id"])
    for alert_id, subscribers in sorted(by_alert.items()):
        tapped = [r["subscriber_id"] for r in await connection.fetch(TAPPED, alert_id, subscribers)]
        if tapped:
            readers: int = await connection.fetchval(READERS_OF_LINKS, alert_id, tapped)
            deltas[alert_id].sms_readers += readers


def _json_counts(counts: Counter[str]) -> str:
    return orjson.dumps(dict(counts)).decode()


def _counts(value: object) -> dict[str, int]:
    parsed = orjson.loads(value) if isinstance(value, str | bytes) else value
    if not isinstance(parsed, dict):
        return {}
    return {str(k): int(v) for k, v in parsed.items()}
