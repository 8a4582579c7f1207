"""Settling sent batches in groups: their delivery events first, then their rows.

A batch is settled once its delivery event is on Kafka and its row, its shard's checkpoint,
the alert's counters, its failures and its follow-up batch are written. One batch at a time,
that is a broker acknowledgement and a database commit for every 1,000 recipients. Here the
batches that come to be settled while a group is being settled wait and form the next group:
the group's events are handed to the producer together and acknowledged together, then one
statement settles the group. A group holds batches of one alert only, so two sender
processes never lock two alerts' rows in opposite orders.

A group is also given up to `window` seconds from its oldest batch's arrival to fill up to
`max_group`: every group costs a produce request and a statement, and the broker's and the
database's cost is mostly per request, not per batch. Settling later holds nothing up but
the settling itself: a batch's request slot is free once its answer is in.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from broadcaster.clock import Clock, LoopClock
from broadcaster.records import Settlement


class DeliveryPublisher(Protocol):
    """Where a group's delivery events go (`Publisher`)."""

    async def deliveries(self, batches: Sequence[dict[str, Any]]) -> None:
        """Hand every event to the producer and wait for all their acknowledgements."""
        ...


class SettlementStore(Protocol):
    """Where a group is settled (`Store`)."""

    async def settle(self, alert_id: uuid.UUID, group: Sequence[Settlement]) -> set[str]:
        """Settle the group in one statement; the ids of the batches not settled before."""
        ...


@dataclass(frozen=True)
class _Pending:
    settlement: Settlement
    event: dict[str, Any]
    settled: asyncio.Future[bool]
    arrived: float  # clock time


class Settler:
    """Settles the batches of every shard pipe of a sender process."""

    def __init__(
        self,
        store: SettlementStore,
        publisher: DeliveryPublisher,
        *,
        window: float,
        max_group: int = 64,
        clock: Clock | None = None,
    ) -> None:
        if window < 0 or max_group < 1:
            raise ValueError(f"Settle window {window} s and group of {max_group} make no sense.")
        self._store = store
        self._publisher = publisher
        self._max_group = max_group
        self._window = window
        self._clock = clock or LoopClock()
        self._pending: deque[_Pending] = deque()
        self._settling: asyncio.Task[None] | None = None
        self._filled = asyncio.Event()  # set when `max_group` batches wait

    async def settle(self, settlement: Settlement, event: dict[str, Any]) -> bool:
        """Publish the batch's delivery event, then settle it; False when settled before.

        Raises what publishing or the statement raised; the batch then stays unsettled (its
        row `sending`), to be looked up when its shard runs again.
        """
        settled = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(settlement, event, settled, self._clock.now()))
        if len(self._pending) >= self._max_group:
            self._filled.set()
        if self._settling is None:
            self._settling = asyncio.create_task(self._settle_pending())
        result: bool = await settled
        return result

    async def _settle_pending(self) -> None:
        try:
            while self._pending:
                await self._fill()
                group = self._take()
                try:
                    await self._publisher.deliveries([p.event for p in group])
                    done = await self._store.settle(
                        group[0].settlement.alert_id, [p.settlement for p in group]
                    )
                except Exception as exc:
                    for p in group:
                        if not p.settled.done():
                            p.settled.set_exception(exc)
                    continue
                except BaseException:
                    for p in group:
                        p.settled.cancel()
                    raise
                for p in group:
                    if not p.settled.done():
                        p.settled.set_result(p.settlement.batch_id in done)
        finally:
            self._settling = None
            # cancelled: nobody settles what still waits
            while self._pending:
                self._pending.popleft().settled.cancel()

    async def _fill(self) -> None:
        """Wait until `max_group` batches wait or the oldest has waited `window` seconds."""
        if len(self._pending) >= self._max_group:
            return
        self._filled.clear()
        remaining = self._pending[0].arrived + self._window - self._clock.now()
        if remaining > 0:
            await self._clock.wait(self._filled, remaining)

    def _take(self) -> list[_Pending]:
        """The oldest waiting batch and the next ones of its alert, up to `max_group`."""
        alert_id = self._pending[0].settlement.alert_id
        group: list[_Pending] = []
        rest: deque[_Pending] = deque()
        for pending in self._pending:
            if pending.settlement.alert_id == alert_id and len(group) < self._max_group:
                group.append(pending)
            else:
                rest.append(pending)
        self._pending = rest
        return group
