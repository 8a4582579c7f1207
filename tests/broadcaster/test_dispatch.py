"""The dispatcher's bookkeeping: commit only below the lowest unfinished shard; start the next
shard while the last batches of one settle; urgent shards hold normal ones while sending."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import cast

from aiokafka import AIOKafkaConsumer, TopicPartition

from broadcaster.control import Priority
from broadcaster.dispatch import Dispatcher, Offsets, Work
from broadcaster.deps import SenderDeps
from common import topics
from common.messages import ShardTask

P0 = TopicPartition("broadcast.shards", 0)
P1 = TopicPartition("broadcast.shards", 1)


def test_nothing_is_committable_before_anything_is_received() -> None:
    assert Offsets().committable() == {}


def test_the_commit_stops_at_the_lowest_unfinished_offset() -> None:
    offsets = Offsets()
    for offset in (10, 11, 12):
        offsets.received(P0, offset)
    offsets.finished(P0, 11)
    offsets.finished(P0, 12)

    assert offsets.committable() == {P0: 10}

    offsets.finished(P0, 10)
    assert offsets.committable() == {P0: 13}


def test_a_committed_offset_is_not_committed_again() -> None:
    offsets = Offsets()
    offsets.received(P0, 5)
    offsets.finished(P0, 5)
    offsets.committed(offsets.committable())

    assert offsets.committable() == {}

    offsets.received(P0, 6)
    assert offsets.committable() == {}
    offsets.finished(P0, 6)
    assert offsets.committable() == {P0: 7}


def test_partitions_are_independent_and_can_be_selected() -> None:
    offsets = Offsets()
    offsets.received(P0, 1)
    offsets.received(P1, 7)
    offsets.finished(P1, 7)

    assert offsets.committable() == {P0: 1, P1: 8}
    assert offsets.committable({P1}) == {P1: 8}


def test_forgotten_partitions_leave_no_trace() -> None:
    offsets = Offsets()
    offsets.received(P0, 3)
    offsets.forget({P0})

    assert offsets.committable() == {}


def dispatcher(shard_concurrency: int) -> tuple[Dispatcher, list[Work]]:
    """A dispatcher whose `_start` only records (the pipes are tested in test_sender.py)."""
    d = Dispatcher(
        cast(AIOKafkaConsumer, None), cast(SenderDeps, None), shard_concurrency, asyncio.Event()
    )
    started: list[Work] = []

    def start(work: Work) -> None:
        d.running[(work.partition, work.offset)] = work
        started.append(work)

    d._start = start  # type: ignore[method-assign]
    return d, started


def task(n: int) -> ShardTask:
    alert = uuid.UUID(int=1)
    return ShardTask(
        alert_id=alert, shard_no=n, shard_count=10, first_id=1, last_id=2, category="public"
    )


async def test_a_shard_that_sent_its_last_batch_lets_the_next_one_start() -> None:
    d, started = dispatcher(2)
    d.queued.extend(Work(P0, n, task(n)) for n in range(5))
    d._schedule()
    assert [w.offset for w in started] == [0, 1]

    d._draining(started[0])  # settling its last batches: shard 2 starts meanwhile
    assert [w.offset for w in started] == [0, 1, 2]
    d._draining(started[1])
    d._draining(started[2])  # draining ones beyond shard_concurrency count again
    assert [w.offset for w in started] == [0, 1, 2, 3]
    d.running.pop((P0, 0))
    d._schedule()
    assert [w.offset for w in started] == [0, 1, 2, 3, 4]


async def test_an_urgent_shard_holds_normal_ones_until_it_has_sent_its_last_batch() -> None:
    priority = Priority()
    d = Dispatcher(
        cast(AIOKafkaConsumer, None),
        cast(SenderDeps, SimpleNamespace(priority=priority)),
        2,
        asyncio.Event(),
    )
    urgent = Work(TopicPartition(topics.BROADCAST_SHARDS_URGENT, 0), 0, task(0))
    d._hold_urgent(urgent)
    d._hold_urgent(urgent)  # counted once however often it is run
    assert priority.urgent == 1

    d._draining(urgent)  # its last batches settle: normal shards need not wait for that
    assert priority.urgent == 0
    d._release_urgent(urgent)  # and when it ends, nothing is released twice
    assert priority.urgent == 0
