"""The broadcaster's PostgreSQL access: raw asyncpg with prepared statements, no ORM.

Every statement on the hot path is one round trip: the `sending` rows of a shard's next
batches (ranges of ids, written ahead of their requests), a batch's page of subscribers, the
settlement of a group of batches (batches, shards, alert counters and failures in one
statement).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence

import asyncpg

from broadcaster import plans, statements
from broadcaster.records import (
    AlertInfo,
    AlertPlan,
    BatchRow,
    Counters,
    PendingShard,
    PlanOutcome,
    PlanState,
    Settlement,
    ShardRow,
    alert_info,
    counters_of,
)
from common.messages import Audience

logger = logging.getLogger(__name__)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Release a pooled connection as it is: no reset round trip after every statement.

    Nothing here changes session state (`SET LOCAL` only, inside transactions), and the one
    session lock, a shard's advisory lock, is released by `Store.shard_lock` itself.
    """


class Store:
    """The broadcaster's queries, on one asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, dsn: str, size: int) -> Store:
        """A store with a pool of `size` connections to `dsn` (a plain postgresql:// DSN)."""
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=size, reset=_keep_session)
        return cls(pool)

    async def close(self) -> None:
        """Close every connection."""
        await self.pool.close()

    # -- alerts ---------------------------------------------------------------------------

    async def alert(self, alert_id: uuid.UUID) -> AlertInfo | None:
        """The alert's content, or None when there is no such alert."""
        row = await self.pool.fetchrow(
            "SELECT id, title, body, category, buttons::text AS buttons,"
            " audience::text AS audience, created_at, expires_at, test_of, fallback_codes,"
            " sms_kind, sms_subject, sms_text FROM alerts WHERE id = $1",
            alert_id,
        )
        return None if row is None else alert_info(row)

    async def counters(self, alert_id: uuid.UUID) -> Counters | None:
        """The alert's status and counters."""
        row = await self.pool.fetchrow(
            "SELECT status, category, targeted, delivered, failed, test_of,"
            " paused_at IS NOT NULL AS paused FROM alerts WHERE id = $1",
            alert_id,
        )
        if row is None:
            return None
        return counters_of(row)

    async def fail_alert(self, alert_id: uuid.UUID, reason: str) -> Counters | None:
        """Mark a queued, scheduled or sending alert failed with `reason`; None if it was not."""
        row = await self.pool.fetchrow(
            "UPDATE alerts SET status = 'failed', status_reason = $2, updated_at = now()"
            " WHERE id = $1 AND status IN ('queued', 'scheduled', 'sending')"
            " RETURNING status, category, targeted, delivered, failed, test_of",
            alert_id,
            reason,
        )
        if row is None:
            return None
        return counters_of(row)

    async def stopped_among(
        self, alert_ids: Sequence[uuid.UUID]
    ) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
        """Those of `alert_ids` that are cancelled (or failed) in the alerts table, and those
        an operator holds paused."""
        rows = await self.pool.fetch(
            "SELECT id, status IN ('cancelled', 'failed') AS cancelled,"
            " paused_at IS NOT NULL AS paused FROM alerts WHERE id = ANY($1::uuid[])",
            list(alert_ids),
        )
        return {r["id"] for r in rows if r["cancelled"]}, {r["id"] for r in rows if r["paused"]}

    # -- planning -------------------------------------------------------------------------

    async def plan_alert(
        self,
        alert_id: uuid.UUID,
        shard_size: int,
        decide: Callable[[PlanState], PlanOutcome],
    ) -> AlertPlan:
        """Plan one alert in one transaction, as `decide` says from its locked row.

        "planned" writes the shards (ranges of `shard_size` active subscribers), `targeted`
        and the status; "republished" reads the unfinished shards of an earlier plan;
        "scheduled" and "expired" set the status. The alert's row is held `FOR UPDATE`
        until the commit, so two planners of one alert take turns.
        """
        async with self.pool.acquire() as connection, connection.transaction():
            return await plans.plan(connection, alert_id, shard_size, decide)

    async def late_alerts(self) -> list[uuid.UUID]:
        """Sending alerts with a `deliver_within` that has passed, or that the rate so far
        says will pass before the last recipient (`statements.LATE`)."""
        rows = await self.pool.fetch(statements.LATE)
        return [r["id"] for r in rows]

    async def due_alerts(self, limit: int = 100) -> list[uuid.UUID]:
        """The scheduled alerts whose `send_at` has come, oldest first."""
        rows = await self.pool.fetch(
            "SELECT id FROM alerts WHERE status = 'scheduled' AND send_at <= now()"
            " ORDER BY send_at LIMIT $1",
            limit,
        )
        return [r["id"] for r in rows]

    async def claim_stalled(self, stall_seconds: float) -> list[PendingShard]:
        """Pending shards of sending alerts untouched for `stall_seconds`; touched now."""
        rows = await self.pool.fetch(
            "UPDATE shards s SET updated_at = now() FROM alerts a"
            " WHERE a.id = s.alert_id AND a.status = 'sending' AND s.status = 'pending'"
            " AND s.updated_at < now() - make_interval(secs => $1)"
            " RETURNING s.alert_id, s.shard_no, a.category",
            stall_seconds,
        )
        return [PendingShard(r["alert_id"], r["shard_no"], r["category"]) for r in rows]

    # -- shards ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def shard_lock(
        self, alert_id: uuid.UUID, shard_no: int
    ) -> AsyncIterator[asyncpg.Connection | None]:
        """Hold the shard's advisory lock while inside; yields None when another holds it.

        The lock lives on a connection of its own, so a sender that dies releases it. That
        connection is yielded: the shard's pipe plans its batches and reads their pages on
        it, one statement at a time, rather than taking a pooled connection for each.
        """
        key = f"allim-shard:{alert_id}:{shard_no}"
        async with self.pool.acquire() as connection:
            locked = await connection.fetchval(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key
            )
            try:
                yield connection if locked else None
            finally:
                if locked:
                    try:
                        await connection.execute(
                            "SELECT pg_advisory_unlock(hashtextextended($1, 0))", key
                        )
                    except BaseException:
                        # pooled connections are not reset on release (`_keep_session`): one
                        # that may still hold the lock is closed, which releases it
                        connection.terminate()
                        raise

    async def shard(self, alert_id: uuid.UUID, shard_no: int) -> ShardRow | None:
        """The shard, its next batch number and the position its range batches reached."""
        row = await self.pool.fetchrow(statements.SHARD, alert_id, shard_no)
        if row is None:
            return None
        position = row["position"] if row["position"] is not None else row["first_id"] - 1
        return ShardRow(
            alert_id,
            shard_no,
            row["first_id"],
            row["last_id"],
            row["status"],
            row["next_seq"],
            position,
        )

    async def start_shard(self, alert_id: uuid.UUID, shard_no: int) -> None:
        """A sender took the shard up: no longer `pending` (see `Planner.republish_stalled`)."""
        await self.pool.execute(
            "UPDATE shards SET status = 'sending', updated_at = now()"
            " WHERE alert_id = $1 AND shard_no = $2 AND status = 'pending'",
            alert_id,
            shard_no,
        )

    async def unsettled(self, alert_id: uuid.UUID, shard_no: int) -> list[BatchRow]:
        """The shard's batches that are `sending` (fate unknown) or `held`, oldest first."""
        rows = await self.pool.fetch(
            "SELECT id, seq, first_id, last_id, status, subscriber_ids, not_before, channel"
            " FROM batches WHERE alert_id = $1 AND shard_no = $2"
            " AND status IN ('sending', 'held')"
            " ORDER BY seq",
            alert_id,
            shard_no,
        )
        return [
            BatchRow(
                r["id"],
                r["seq"],
                r["first_id"],
                r["last_id"],
                r["status"],
                tuple(r["subscriber_ids"]) if r["subscriber_ids"] is not None else None,
                r["not_before"],
                r["channel"],
            )
            for r in rows
        ]

    async def finish_shard(
        self, alert_id: uuid.UUID, shard_no: int, status: str
    ) -> Counters | None:
        """Mark the shard `done` or `cancelled`; the alert's final counters once no shard of
        it is left unfinished, else None.

        The alert goes `sending -> completed` in the same transaction when every shard is
        done; a cancelled alert's counters come back with the gateway's reason. Finishing a
        finished shard again changes nothing and answers the same. The alert row is locked
        first, so of two senders finishing the last two shards at once the second sees the
        first's shard finished: the end is told once. `FOR NO KEY UPDATE`, not `FOR UPDATE`:
        the foreign-key checks of a new batch row take `KEY SHARE` on the alert, and a
        `FOR UPDATE` waiting behind those closed a deadlock with batches being settled.
        """
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "SELECT 1 FROM alerts WHERE id = $1 FOR NO KEY UPDATE", alert_id
            )
            await connection.execute(
                "UPDATE shards SET status = $3, updated_at = now()"
                " WHERE alert_id = $1 AND shard_no = $2 AND status <> $3",
                alert_id,
                shard_no,
                status,
            )
            if await connection.fetchval(
                "SELECT EXISTS (SELECT 1 FROM shards WHERE alert_id = $1"
                " AND status NOT IN ('done', 'cancelled'))",
                alert_id,
            ):
                return None
            await connection.execute(
                "UPDATE alerts SET status = 'completed', completed_at = now(), updated_at = now()"
                " WHERE id = $1 AND status = 'sending' AND NOT EXISTS"
                " (SELECT 1 FROM shards WHERE alert_id = $1 AND status <> 'done')",
                alert_id,
            )
            row = await connection.fetchrow(
                "SELECT status, category, targeted, delivered, failed, status_reason, test_of"
                " FROM alerts WHERE id = $1",
                alert_id,
            )
        if row is None:
            return None
        return counters_of(row)

    # -- subscribers ----------------------------------------------------------------------

    async def page(
        self,
        audience: Audience,
        after: int,
        last: int,
        limit: int,
        connection: asyncpg.Connection | None = None,
    ) -> list[asyncpg.Record]:
        """Up to `limit` active subscribers of the audience with `after < id <= last`.

        On `connection` when given (one not in use meanwhile), else on a pooled one.
        """
        conditions, params = statements.audience_filter(audience, 4)
        rows: list[asyncpg.Record] = await (connection or self.pool).fetch(
            statements.PAGE.format(conditions=conditions), after, last, limit, *params
        )
        return rows

    async def recipients(self, subscriber_ids: Sequence[int]) -> list[asyncpg.Record]:
        """The listed subscribers that are still active."""
        rows: list[asyncpg.Record] = await self.pool.fetch(
            "SELECT id, recipient_no FROM subscribers WHERE id = ANY($1::bigint[])"
            " AND status = 'active' ORDER BY id",
            list(subscriber_ids),
        )
        return rows

    # -- batches --------------------------------------------------------------------------

    async def plan_batches(
        self,
        alert_id: uuid.UUID,
        shard_no: int,
        first_seq: int,
        audience: Audience,
        after: int,
        last: int,
        batch_size: int,
        count: int,
        connection: asyncpg.Connection | None = None,
    ) -> tuple[list[BatchRow], bool]:
        """Write the shard's next `count` batches (`after < id <= last`) `sending`.

        Their fate is unknown from now on: a sender that dies looks each one up before
        sending it again. The batches in id order (none: the shard is exhausted), and False
        when a batch id existed already (those ranges are not returned). On `connection`
        when given (one not in use meanwhile), else on a pooled one.
        """
        conditions, params = statements.audience_filter(audience, 9)
        rows = await (connection or self.pool).fetch(
            statements.PLAN_BATCHES.format(conditions=conditions),
            f"{alert_id}:{shard_no}:",
            alert_id,
            shard_no,
            first_seq,
            after,
            last,
            batch_size,
            count,
            *params,
        )
        planned = [
            BatchRow(r["id"], r["seq"], r["first_id"], r["last_id"]) for r in rows if r["id"]
        ]
        return planned, len(planned) == len(rows)

    async def split_batch(
        self,
        batch: BatchRow,
        last_id: int,
        size: int,
        rest: BatchRow,
        rest_size: int,
        connection: asyncpg.Connection | None = None,
    ) -> None:
        """`batch` ends at `last_id` with `size` recipients; `rest` (written `sending`) follows.

        `rest_size` is what is known of the rest when the split is made (the page read held
        that many beyond a batch); its recipients are read when it is sent, like any batch's.
        On `connection` when given (one not in use meanwhile), else on a pooled one.
        """
        await (connection or self.pool).execute(
            statements.SPLIT_BATCH,
            batch.id,
            last_id,
            size,
            rest.id,
            rest.seq,
            rest.first_id,
            rest.last_id,
            rest_size,
        )

    async def unplan(
        self, batch_ids: Sequence[str], connection: asyncpg.Connection | None = None
    ) -> None:
        """Remove batches planned but never sent (the pipe stopped before them).

        On `connection` when given (one not in use meanwhile), else on a pooled one.
        """
        await (connection or self.pool).execute(
            "DELETE FROM batches WHERE id = ANY($1::varchar[]) AND status = 'sending'",
            list(batch_ids),
        )

    async def release_held(self, batch_id: str) -> None:
        """A held follow-up batch is about to be sent: its fate becomes unknown."""
        await self.pool.execute(
            "UPDATE batches SET status = 'sending', attempts = attempts + 1"
            " WHERE id = $1 AND status = 'held'",
            batch_id,
        )

    async def settle(self, alert_id: uuid.UUID, group: Sequence[Settlement]) -> set[str]:
        """Settle batches of one alert in one statement; the ids of those not settled before."""
        rows = await self.pool.fetch(
            statements.SETTLE, *statements.settle_parameters(alert_id, group)
        )
        return {r[0] for r in rows}
