"""An alert's plan in the database: its audience walked into shard ranges, its shards and
status written, or an earlier plan read back; all inside the transaction `Store.plan_alert`
holds, with the alert's row locked `FOR UPDATE`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import asyncpg
import orjson

from broadcaster.records import AlertPlan, Counters, PlanOutcome, PlanState, counters_of
from broadcaster.statements import audience_filter
from common.messages import Audience, Category


async def plan(
    connection: asyncpg.Connection,
    alert_id: uuid.UUID,
    shard_size: int,
    decide: Callable[[PlanState], PlanOutcome],
) -> AlertPlan:
    """Plan the alert on `connection` (in its transaction), as `decide` says from its row."""
    row = await connection.fetchrow(
        "SELECT status, category, audience::text AS audience, send_at, expires_at, test_of"
        " FROM alerts WHERE id = $1 FOR UPDATE",
        alert_id,
    )
    if row is None:
        return AlertPlan("missing")
    category: Category = row["category"]
    outcome = decide(PlanState(row["status"], row["send_at"], row["expires_at"]))
    if outcome == "planned":
        audience = Audience.model_validate(orjson.loads(row["audience"]))
        return await _write_plan(
            connection, alert_id, category, audience, shard_size, row["test_of"]
        )
    if outcome == "republished":
        return await _unfinished(connection, alert_id, category)
    if outcome == "scheduled":
        await connection.execute(
            "UPDATE alerts SET status = 'scheduled', updated_at = now()"
            " WHERE id = $1 AND status <> 'scheduled'",
            alert_id,
        )
    elif outcome == "expired":
        row = await connection.fetchrow(
            "UPDATE alerts SET status = 'failed', status_reason = 'expired before it"
            " could be sent', updated_at = now() WHERE id = $1"
            " RETURNING status, targeted, delivered, failed, test_of",
            alert_id,
        )
        return AlertPlan(outcome, category, counters_of(row, category))
    return AlertPlan(outcome, category)


async def _walk_shards(
    connection: asyncpg.Connection, audience: Audience, shard_size: int
) -> list[tuple[int, int, int]]:
    """The audience as ranges `(first_id, last_id, count)` of `shard_size` active subscribers.

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
    ranges: list[tuple[int, int, int]] = []
    after = 0
    for row in await connection.fetch(boundaries, shard_size - 1, *params):
        ranges.append((after + 1, row["last"], shard_size))
        after = row["last"]
    row = await connection.fetchrow(rest, after, *params)
    if row["n"]:
        ranges.append((after + 1, row["last"], row["n"]))
    return ranges


async def _write_plan(
    connection: asyncpg.Connection,
    alert_id: uuid.UUID,
    category: Category,
    audience: Audience,
    shard_size: int,
    test_of: uuid.UUID | None,
) -> AlertPlan:
    """The alert's shards, `targeted` and status written: `sending`, or `completed` when
    nobody is in its audience."""
    ranges = await _walk_shards(connection, audience, shard_size)
    targeted = sum(count for _, _, count in ranges)
    await connection.executemany(
        "INSERT INTO shards (alert_id, shard_no, first_id, last_id) VALUES ($1, $2, $3, $4)",
        [(alert_id, no, first, last) for no, (first, last, _) in enumerate(ranges)],
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
    counters = Counters(status, category, targeted, 0, 0, test_of=test_of)
    return AlertPlan("planned", category, counters, tuple(range(len(ranges))))


async def _unfinished(
    connection: asyncpg.Connection, alert_id: uuid.UUID, category: Category
) -> AlertPlan:
    """An earlier plan of a sending alert: its counters and its shards not done or cancelled."""
    rows = await connection.fetch(
        "SELECT shard_no FROM shards WHERE alert_id = $1"
        " AND status NOT IN ('done', 'cancelled') ORDER BY shard_no",
        alert_id,
    )
    row = await connection.fetchrow(
        "SELECT status, targeted, delivered, failed, test_of FROM alerts WHERE id = $1", alert_id
    )
    counters = counters_of(row, category)
    return AlertPlan("republished", category, counters, tuple(r["shard_no"] for r in rows))
