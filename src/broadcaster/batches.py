"""A shard's batches: numbered, planned ahead as id ranges, paged when sent, split if grown.

A shard's batch rows are written `sending` `PLAN_AHEAD` at a time, ahead of their requests:
one statement and one commit for them all. Each batch's page is read from its range at the
last moment, so an opt-out made while earlier batches were in flight is honoured; a range
that gained recipients since it was planned is split, the rest written as a batch of its
own. A sender that dies looks up at most `PLAN_AHEAD` more batches than it had in flight;
one that stops removes the rows it never sent.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from broadcaster.records import BatchRow
from common.messages import Audience

logger = logging.getLogger(__name__)

PLAN_AHEAD = 16


class BatchStore(Protocol):
    """What the batches of a shard need of the store."""

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
    ) -> tuple[list[BatchRow], bool]: ...

    async def page(
        self,
        audience: Audience,
        after: int,
        last: int,
        limit: int,
        connection: asyncpg.Connection | None = None,
    ) -> list[asyncpg.Record]: ...

    async def recipients(self, subscriber_ids: Sequence[int]) -> list[asyncpg.Record]: ...

    async def split_batch(
        self,
        batch: BatchRow,
        last_id: int,
        size: int,
        rest: BatchRow,
        rest_size: int,
        connection: asyncpg.Connection | None = None,
    ) -> None: ...

    async def unplan(
        self, batch_ids: Sequence[str], connection: asyncpg.Connection | None = None
    ) -> None: ...


@dataclass(frozen=True)
class Plan:
    """The next batches of a shard, written `sending`; `conflict` when some existed already."""

    batches: list[BatchRow]
    conflict: bool = False


@dataclass(frozen=True)
class Page:
    """A batch's recipients now, as (id, number) rows; `split_off` holds what grew past it."""

    rows: list[asyncpg.Record]
    split_off: BatchRow | None = None


class ShardBatches:
    """The batches of one shard: their numbers and ids, their planning, pages and splits.

    `connection` is the shard lock's: planning, paging and removal go through it one
    statement at a time, so a pipe that lost its lock cannot touch rows its shard's new
    holder is recovering.
    """

    def __init__(
        self,
        store: BatchStore,
        alert_id: uuid.UUID,
        shard_no: int,
        audience: Audience,
        batch_size: int,
        next_seq: int,
        connection: asyncpg.Connection,
    ) -> None:
        self.store = store
        self.alert_id = alert_id
        self.shard_no = shard_no
        self.audience = audience
        self.batch_size = batch_size
        self.connection = connection
        self._seq = next_seq

    def batch_id(self, seq: int) -> str:
        """The id of the shard's batch number `seq`: its idempotency key at the provider."""
        return f"{self.alert_id}:{self.shard_no}:{seq}"

    def next_seq(self) -> int:
        """Take the shard's next batch number."""
        seq = self._seq
        self._seq += 1
        return seq

    async def plan(self, after: int, last_id: int) -> Plan:
        """Write the next `PLAN_AHEAD` batches of the range `after < id <= last_id`."""
        first = self._seq
        # numbers reserved before the statement: a follow-up batch may take the next one
        # meanwhile; those the shard's end leaves unused are given back if nobody did
        self._seq += PLAN_AHEAD
        batches, written = await self.store.plan_batches(
            self.alert_id,
            self.shard_no,
            first,
            self.audience,
            after,
            last_id,
            self.batch_size,
            PLAN_AHEAD,
            self.connection,
        )
        if not written:
            # the batches written are `sending`: the shard run again looks them up
            return Plan(batches, conflict=True)
        if self._seq == first + PLAN_AHEAD:
            self._seq = first + len(batches)
        return Plan(batches)

    async def page(self, batch: BatchRow, *, on_lock: bool = True) -> Page:
        """The range batch's recipients now; any beyond a batch are split off, written.

        `on_lock` False reads and splits on pooled connections (a batch recovered beside
        the shard's loop, which holds the lock's connection).
        """
        size = self.batch_size
        connection = self.connection if on_lock else None
        rows = await self.store.page(
            self.audience, batch.first_id - 1, batch.last_id, size + 1, connection
        )
        if len(rows) <= size:
            return Page(rows)
        # subscribers joined the audience inside its range since it was planned
        seq = self.next_seq()
        rest = BatchRow(self.batch_id(seq), seq, rows[size]["id"], batch.last_id)
        await self.store.split_batch(
            batch, rows[size - 1]["id"], size, rest, len(rows) - size, connection
        )
        return Page(rows[:size], rest)

    async def rows_of(self, batch: BatchRow) -> Page:
        """A written batch's recipients now: those it lists, or those of its id range."""
        if batch.subscriber_ids is not None:
            return Page(await self.store.recipients(batch.subscriber_ids))
        return await self.page(batch, on_lock=False)

    async def unplan(self, batches: Sequence[BatchRow]) -> bool:
        """Remove the rows of batches planned but not sent; False when they stay `sending`.

        Rows that stay are looked up when the shard runs again.
        """
        if not batches:
            return True
        try:
            await self.store.unplan([b.id for b in batches], self.connection)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            logger.warning(
                "shard %s:%s: %s batches planned and not sent stay `sending`: %r",
                self.alert_id,
                self.shard_no,
                len(batches),
                exc,
                extra={"alert_id": str(self.alert_id), "shard": self.shard_no},
            )
            return False
        return True
