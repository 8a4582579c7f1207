"""The dispatcher's line-up: which shards start (urgent first, at most `shard_concurrency`
of each kind beside those draining), held shards, and offsets committed only below the
lowest unfinished shard. Pure bookkeeping: no Kafka, no pipes (those are in test_sender.py
and test_broadcast.py)."""

from __future__ import annotations

import uuid

from aiokafka import TopicPartition

from broadcaster.control import Priority
from broadcaster.lineup import Lineup, Offsets, Work
from common import topics
from common.messages import ShardTask

P0 = TopicPartition(topics.BROADCAST_SHARDS, 0)
P1 = TopicPartition(topics.BROADCAST_SHARDS, 1)
U0 = TopicPartition(topics.BROADCAST_SHARDS_URGENT, 0)


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


ALERT = uuid.UUID(int=1)


def work(partition: TopicPartition, offset: int, alert_id: uuid.UUID = ALERT) -> Work:
    task = ShardTask(
        alert_id=alert_id,
        shard_no=offset,
        shard_count=10,
        first_id=1,
        last_id=2,
        category="emergency" if partition.topic == topics.BROADCAST_SHARDS_URGENT else "public",
    )
    return Work(partition, offset, task)


def received(lineup: Lineup, *works: Work) -> list[Work]:
    for w in works:
        lineup.offsets.received(w.partition, w.offset)
        lineup.add(w)
    return list(works)


def offsets(works: list[Work]) -> list[tuple[str, int]]:
    return [(w.partition.topic, w.offset) for w in works]


def test_at_most_shard_concurrency_shards_of_a_kind_start() -> None:
    lineup = Lineup(2, Priority())
    received(lineup, *(work(P0, n) for n in range(5)))

    assert offsets(lineup.due(0.0)) == [(topics.BROADCAST_SHARDS, 0), (topics.BROADCAST_SHARDS, 1)]
    assert lineup.due(0.0) == []  # both slots taken
    assert sorted(w.offset for w in lineup.running.values()) == [0, 1]
    assert lineup.lag() == (0, 5, 0)


def test_urgent_shards_start_first_and_have_slots_of_their_own() -> None:
    lineup = Lineup(1, Priority())
    received(lineup, work(P0, 0), work(P0, 1), work(U0, 0), work(U0, 1))

    started = lineup.due(0.0)

    assert offsets(started) == [(topics.BROADCAST_SHARDS_URGENT, 0), (topics.BROADCAST_SHARDS, 0)]
    assert lineup.lag() == (2, 2, 0)
    lineup.ended(started[0], finished=True)
    assert offsets(lineup.due(0.0)) == [(topics.BROADCAST_SHARDS_URGENT, 1)]


def test_a_shard_that_sent_its_last_batch_lets_the_next_one_start() -> None:
    lineup = Lineup(2, Priority())
    received(lineup, *(work(P0, n) for n in range(6)))
    first, second = lineup.due(0.0)

    lineup.drained(first)  # settling its last batches: shard 2 starts meanwhile
    (third,) = lineup.due(0.0)
    assert third.offset == 2
    lineup.drained(second)
    assert [w.offset for w in lineup.due(0.0)] == [3]
    lineup.drained(third)  # draining ones beyond shard_concurrency count again
    assert lineup.due(0.0) == []

    lineup.ended(first, finished=True)
    assert [w.offset for w in lineup.due(0.0)] == [4]


def test_a_drained_shard_run_again_counts_as_sending() -> None:
    lineup = Lineup(1, Priority())
    received(lineup, work(P0, 0), work(P0, 1))
    (first,) = lineup.due(0.0)
    lineup.drained(first)
    (second,) = lineup.due(0.0)

    lineup.sending(first)  # its pipe runs again (it had unsettled batches)

    assert not first.draining
    lineup.ended(second, finished=True)
    assert lineup.due(0.0) == []  # the first takes the one slot again


def test_an_urgent_shard_holds_normal_ones_until_it_has_sent_its_last_batch() -> None:
    priority = Priority()
    lineup = Lineup(2, priority)
    (urgent,) = received(lineup, work(U0, 0))
    assert priority.urgent == 1  # from the moment it arrives

    lineup.due(0.0)
    lineup.sending(urgent)  # counted once however often it is run
    assert priority.urgent == 1

    lineup.drained(urgent)  # its last batches settle: normal shards need not wait for that
    assert priority.urgent == 0
    lineup.sending(urgent)  # run again to settle what it left: it holds again
    assert priority.urgent == 1
    lineup.ended(urgent, finished=True)
    lineup.ended(urgent, finished=True)  # nothing is released twice
    assert priority.urgent == 0


def test_a_held_shard_takes_no_slot_until_its_time() -> None:
    lineup = Lineup(1, Priority())
    received(lineup, work(P0, 0), work(P0, 1))
    (first,) = lineup.due(0.0)

    lineup.hold(first, not_before=100.0)
    lineup.ended(first, finished=False)

    (second,) = lineup.due(50.0)
    assert second.offset == 1
    assert lineup.lag() == (0, 1, 1)  # the held one apart
    assert lineup.due(99.9) == []
    lineup.ended(second, finished=True)
    assert lineup.due(99.9) == []
    (again,) = lineup.due(100.0)
    assert again is first
    lineup.ended(first, finished=True)
    assert lineup.due(200.0) == []  # started once, not again
    assert lineup.lag() == (0, 0, 0)


def test_only_finished_shards_let_their_offsets_be_committed() -> None:
    lineup = Lineup(3, Priority())
    first, second, third = received(lineup, work(P0, 0), work(P0, 1), work(P0, 2))
    lineup.due(0.0)

    lineup.ended(second, finished=True)
    lineup.ended(first, finished=False)  # stopped or held: it runs again somewhere
    assert lineup.offsets.committable() == {P0: 0}

    lineup.ended(third, finished=True)
    assert lineup.offsets.committable() == {P0: 0}
    lineup.offsets.finished(P0, 0)
    assert lineup.offsets.committable() == {P0: 3}


def test_revoking_drops_the_waiting_shards_and_names_the_running_ones() -> None:
    priority = Priority()
    lineup = Lineup(1, priority)
    received(lineup, work(P0, 0), work(P0, 1), work(P0, 2), work(P1, 0), work(U0, 0), work(U0, 1))
    _, parked = lineup.due(0.0)  # U0:0 and P0:0 run
    lineup.hold(parked, not_before=10.0)
    lineup.ended(parked, finished=False)
    (normal,) = lineup.due(0.0)  # P0:1
    assert priority.urgent == 2

    lost = lineup.revoke({P0, U0})

    assert sorted(offsets(lost)) == [
        (topics.BROADCAST_SHARDS, 1),
        (topics.BROADCAST_SHARDS_URGENT, 0),
    ]
    assert priority.urgent == 1  # the queued urgent shard holds no more; the running one ends
    lineup.ended(normal, finished=False)
    assert lineup.held == []
    assert list(lineup.urgent) == []
    assert lineup.lag() == (1, 1, 0)  # U0:0 until its runner ends; P1:0 waiting
    assert [w.partition for w in lineup.due(10.0)] == [P1]  # not the held P0:0 nor P0:2


CANCELLED = uuid.UUID(int=2)


def cancelled(alert_id: uuid.UUID) -> bool:
    return alert_id == CANCELLED


def test_shards_of_a_cancelled_alert_do_not_count_as_waiting() -> None:
    lineup = Lineup(1, Priority())
    received(lineup, work(P0, 0), work(P0, 1), work(P0, 2, CANCELLED), work(U0, 0, CANCELLED))
    _, held = lineup.due(0.0)  # U0:0, of the cancelled alert, runs to finish; P0:0 too
    lineup.hold(held, not_before=100.0)
    lineup.ended(held, finished=False)

    assert lineup.lag(cancelled) == (1, 1, 1)  # U0:0 running, P0:1 queued, P0:0 held
    assert lineup.lag() == (1, 2, 1)  # not knowing of the cancel, P0:2 waits as well


def test_a_held_shard_of_a_cancelled_alert_runs_at_once_to_finish() -> None:
    lineup = Lineup(1, Priority())
    (first,) = received(lineup, work(P0, 0, CANCELLED))
    lineup.due(0.0)
    lineup.hold(first, not_before=100.0)
    lineup.ended(first, finished=False)
    assert lineup.lag(cancelled) == (0, 0, 0)

    (again,) = lineup.due(1.0, cancelled)

    assert again is first
    lineup.ended(again, finished=True)
    assert lineup.offsets.committable() == {P0: 1}
