"""The dispatcher's offset bookkeeping: commit only below the lowest unfinished shard."""

from __future__ import annotations

from aiokafka import TopicPartition

from broadcaster.dispatch import Offsets

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
