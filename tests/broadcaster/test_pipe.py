"""Shard pipes against the real PostgreSQL and Kafka, with a scripted provider in process.

The provider here is a small in-memory dealer, so each test can say exactly what every
recipient is answered and when; the sandbox and child processes are in test_broadcast.py.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from tests.broadcaster.kits import Kit
from tests.broadcaster.rigs import (
    OPTIONS,
    Rig,
    WallClock,
    events_of,
    has_completed,
    make_rig,
)
from tests.waiting import Watched, eventually

from broadcaster import control_feed
from broadcaster.deps import InFlight
from broadcaster.metrics import BroadcasterMetrics
from broadcaster.pipe import ShardPipe
from broadcaster.planner import Planner
from broadcaster.providers.base import OutgoingBatch, Recipients
from broadcaster.publishing import Publisher
from broadcaster.records import FollowUp, Settlement
from broadcaster.settling import Settler
from broadcaster.store import Store
from common import topics
from common.events import CloudEvent
from common.messages import (
    AlertControl,
    AlertLifecycleData,
    Audience,
    Category,
    DeliveryBatchData,
    ShardTask,
)
from common.readback import read_back
from common.tokens import TokenSigner

pytestmark = pytest.mark.integration


@pytest.fixture
def rig(store: Store, producer: AIOKafkaProducer) -> Rig:
    return make_rig(store, producer)


async def test_a_shard_is_sent_in_batches_with_tracked_links_and_settled(
    rig: Rig, kit: Kit, store: Store
) -> None:
    people = await kit.seed(250)
    alert_id = await kit.create_alert(people.audience)
    [task] = await rig.plan(alert_id)

    assert await rig.run(task) == "done"

    assert [b.batch_id for b in rig.dealer.sends] == [f"{alert_id}:0:{i}" for i in range(3)]
    assert [len(b.recipients) for b in rig.dealer.sends] == [100, 100, 50]
    assert rig.dealer.recipients() == people.ids
    token = rig.dealer.sends[0].recipients.links[0].rsplit("/r/", 1)[1]
    verified = TokenSigner(b"test-tracking-secret-0123456789").verify(token, time.time())
    assert (verified.alert_id, verified.subscriber_id) == (alert_id, people.ids[0])
    row = await rig.alert(alert_id)
    assert (row["status"], row["delivered"], row["failed"]) == ("completed", 250, 0)
    shard = await store.shard(alert_id, 0)
    assert shard is not None
    assert (shard.status, shard.next_seq, shard.position) == ("done", 3, people.ids[-1])
    checkpoint = await store.pool.fetchval(
        "SELECT checkpoint_id FROM shards WHERE alert_id = $1", alert_id
    )
    assert checkpoint == people.ids[-1]


async def test_each_settled_batch_is_a_delivery_cloudevent(
    rig: Rig, kit: Kit, kafka_topics: str
) -> None:
    people = await kit.seed(150)
    rig.dealer.code = lambda sid, attempt: 3019 if sid == people.ids[7] else 1000
    alert_id = await kit.create_alert(people.audience)
    [task] = await rig.plan(alert_id)
    assert await rig.run(task) == "done"

    found = await events_of(kafka_topics, topics.DELIVERIES, alert_id, lambda e: len(e) >= 2)
    lifecycle = await events_of(kafka_topics, topics.ALERT_EVENTS, alert_id, has_completed)

    assert sorted(e.id for e in found) == [f"{alert_id}:0:0", f"{alert_id}:0:1"]
    batches = [DeliveryBatchData.model_validate(e.data) for e in found]
    first = next(b for b in batches if b.seq == 0)
    assert (first.delivered, first.failed, first.failed_by_reason) == (99, 1, {"3019": 1})
    assert first.subscriber_ids == people.ids[:100]
    assert [c for c in first.result_codes if c != 1000] == [3019]
    assert first.result_codes[7] == 3019
    assert {e.type for e in found} == {"dev.allim.delivery.batch"}
    completed = [e for e in lifecycle if e.type == "dev.allim.alert.completed"]
    assert [e.id for e in completed] == [f"{alert_id}:completed"]
    data = AlertLifecycleData.model_validate(completed[0].data)
    assert (data.targeted, data.delivered, data.failed, data.pending) == (150, 149, 1, 0)


async def test_each_settled_batch_records_who_it_reached_and_how(
    rig: Rig, kit: Kit, store: Store
) -> None:
    people = await kit.seed(150)
    refused, retried = people.ids[7], people.ids[120]
    rig.dealer.code = lambda sid, attempt: (
        3019 if sid == refused else 5000 if sid == retried and attempt == 1 else 1000
    )
    alert_id = await kit.create_alert(people.audience)
    [task] = await rig.plan(alert_id)
    assert await rig.run(task) == "done"

    rows = await store.pool.fetch(
        "SELECT seq, allim_ids(sent_ids) AS sent_ids,"
        " allim_codes(result_codes, allim_id_count(sent_ids)) AS result_codes"
        " FROM batches WHERE alert_id = $1 ORDER BY seq",
        alert_id,
    )
    record = {r["seq"]: dict(zip(r["sent_ids"], r["result_codes"], strict=True)) for r in rows}
    assert record[0] == {sid: 3019 if sid == refused else 1000 for sid in people.ids[:100]}
    assert record[1] == {sid: 5000 if sid == retried else 1000 for sid in people.ids[100:]}
    # the retry went out in a follow-up batch of its own, which says it was delivered
    assert record[2] == {retried: 1000}


async def test_a_frozen_audience_is_sent_to_exactly_its_active_members(
    rig: Rig, kit: Kit, store: Store
) -> None:
    people = await kit.seed(10)
    chosen = [people.ids[1], people.ids[4], people.ids[6], people.ids[9]]
    alert_id = uuid.uuid4()
    await kit.create_alert(Audience(recipients_of=alert_id), alert_id=alert_id)
    await store.pool.executemany(
        "INSERT INTO alert_recipients (alert_id, subscriber_id) VALUES ($1, $2)",
        [(alert_id, sid) for sid in chosen],
    )
    await store.pool.execute(
        "UPDATE subscribers SET status = 'opted_out' WHERE id = $1", people.ids[6]
    )
    [task] = await rig.plan(alert_id)
    assert await rig.run(task) == "done"
    assert sorted(rig.dealer.recipients()) == [people.ids[1], people.ids[4], people.ids[9]]
    row = await rig.alert(alert_id)
    assert (row["status"], row["targeted"], row["delivered"]) == ("completed", 3, 3)


async def test_a_test_sends_events_name_its_parent(rig: Rig, kit: Kit, kafka_topics: str) -> None:
    testers = await kit.seed(3)
    parent = await kit.create_alert(testers.audience, status="pending_approval")
    alert_id = await kit.create_alert(testers.audience, test_of=parent)
    [task] = await rig.plan(alert_id)
    assert await rig.run(task) == "done"

    deliveries = await events_of(kafka_topics, topics.DELIVERIES, alert_id, bool)
    lifecycle = await events_of(kafka_topics, topics.ALERT_EVENTS, alert_id, has_completed)
    [batch] = [DeliveryBatchData.model_validate(e.data) for e in deliveries]
    assert (batch.test_of, batch.delivered) == (parent, 3)
    told = [AlertLifecycleData.model_validate(e.data) for e in lifecycle]
    assert {e.test_of for e in told} == {parent}
    assert {e.status for e in told} >= {"sending", "completed"}
    # the parent is untouched: nothing was planned or counted for it
    row = await rig.alert(parent)
    assert (row["status"], row["targeted"], row["delivered"]) == ("pending_approval", 0, 0)


async def test_a_real_broadcasts_events_carry_no_test_mark(
    rig: Rig, kit: Kit, kafka_topics: str
) -> None:
    people = await kit.seed(2)
    alert_id = await kit.create_alert(people.audience)
    [task] = await rig.plan(alert_id)
    assert await rig.run(task) == "done"
    [event] = await events_of(kafka_topics, topics.DELIVERIES, alert_id, bool)
    assert "test_of" not in event.data


async def test_a_shard_task_without_a_committed_plan_is_skipped(rig: Rig, kit: Kit) -> None:
    people = await kit.seed(10)
    alert_id = await kit.create_alert(people.audience)
    unplanned = ShardTask(alert_id=alert_id, shard_no=0, category="public")

    assert await rig.run(unplanned) == "skipped"

    assert rig.dealer.sends == []
    row = await rig.alert(alert_id)
    assert row["status"] == "queued"


async def test_permanent_failures_are_recorded_and_temporary_ones_retried_once_more(
    rig: Rig, kit: Kit, store: Store
) -> None:
    people = await kit.seed(120)
    inactive, temporary = set(people.ids[::10]), set(people.ids[5::10])

    def code(sid: int, attempt: int) -> int:
        if sid in inactive:
            return 3018
        return 5000 if sid in temporary and attempt == 1 else 1000

    rig.dealer.code = code
    alert_id = await kit.create_alert(people.audience)
    [task] = await rig.plan(alert_id)

    assert await rig.run(task) == "done"

    row = await rig.alert(alert_id)
    assert (row["status"], row["delivered"], row["failed"]) == ("completed", 108, 12)
    failures = await store.pool.fetch(
        "SELECT subscriber_id, result_code FROM delivery_failures WHERE alert_id = $1", alert_id
    )
    assert {(f[0], f[1]) for f in failures} == {(sid, 3018) for sid in inactive}
    sent = rig.dealer.recipients()
    assert sorted(sent) == sorted(people.ids + sorted(temporary))
    follow_ups = [b for b in rig.dealer.sends if set(b.recipients.subscriber_ids) <= temporary]
    assert len(follow_ups) == 2  # one per original batch, each with an id of its own
    assert len({b.batch_id for b in rig.dealer.sends}) == len(rig.dealer.sends)


async def test_brand_3022_is_held_until_the_brand_window_then_sent(rig: Rig, kit: Kit) -> None:
    people = await kit.seed(30)
    rig.dealer.code = lambda sid, attempt: 3022 if attempt == 1 else 1000
    resume_at: list[datetime] = []

    def brand_window(now: datetime) -> datetime:
        resume_at.append(now + timedelta(seconds=0.3))
        return resume_at[-1]

    rig.deps.brand_resume_at = brand_window
    alert_id = await kit.create_alert(people.audience, category="promotional")
    [task] = await rig.plan(alert_id)

    assert await rig.run(task) == "done"

    # sent again once, and not before the window opened
    assert len(resume_at) == 1
    assert rig.dealer.sent_at[1] >= resume_at[0].timestamp()
    assert [b.message_type for b in rig.dealer.sends] == ["BRAND", "BRAND"]
    row = await rig.alert(alert_id)
    assert (row["status"], row["delivered"]) == ("completed", 30)


async def test_a_brand_hold_until_morning_gives_the_shard_slot_back(
    rig: Rig, kit: Kit, store: Store
) -> None:
    people = await kit.seed(30)
    rig.dealer.code = lambda sid, attempt: 3022 if attempt == 1 else 1000
    morning = datetime.now(UTC) + timedelta(hours=1)
    rig.deps.brand_resume_at = lambda now: morning
    alert_id = await kit.create_alert(people.audience, category="promotional")
    [task] = await rig.plan(alert_id)

    pipe = ShardPipe(rig.deps, task, asyncio.Event())
    # it does not sit on its slot until morning
    assert await asyncio.wait_for(pipe.run(), 10) == "held"
    assert pipe.held_until == morning
    assert len(rig.dealer.sends) == 1

    # morning: the shard is run again and sends its held batch, once
    await store.pool.execute(
        "UPDATE batches SET not_before = now() WHERE alert_id = $1 AND status = 'held'",
        alert_id,
    )
    assert await rig.run(task) == "done"
    assert len(rig.dealer.sends) == 2
    assert sorted(rig.dealer.sends[1].recipients.subscriber_ids) == people.ids
    row = await rig.alert(alert_id)
    assert (row["status"], row["delivered"]) == ("completed", 30)


async def test_a_batch_of_unknown_fate_is_looked_up_not_sent_again(
    rig: Rig, kit: Kit, store: Store
) -> None:
    people = await kit.seed(250)
    alert_id = await kit.create_alert(people.audience)
    [task] = await rig.plan(alert_id)
    # a sender wrote its first two batches and died: the provider took the first, never saw
    # the second
    planned, written = await store.plan_batches(
        alert_id, 0, 0, people.audience, people.ids[0] - 1, people.ids[-1], 100, 2
    )
    assert written
    assert [(b.seq, b.first_id, b.last_id) for b in planned] == [
        (0, people.ids[0], people.ids[99]),
        (1, people.ids[100], people.ids[199]),
    ]
    taken = await rig.dealer.send(
        _batch(alert_id, f"{alert_id}:0:0", people.ids[:100], people.numbers[:100])
    )
    rig.dealer.sends.clear()

    assert await rig.run(task) == "done"

    assert sorted(b.batch_id for b in rig.dealer.sends) == [f"{alert_id}:0:1", f"{alert_id}:0:2"]
    assert sorted(rig.dealer.recipients()) == people.ids[100:]
    assert len(taken.subscriber_ids) == 100
    row = await rig.alert(alert_id)
    assert (row["status"], row["delivered"]) == ("completed", 250)


async def _one_away_from_the_first_range(
    rig: Rig, kit: Kit, store: Store
) -> tuple[Any, int, uuid.UUID, ShardTask]:
    """150 subscribers, the 51st opted out (ranges of 100 plan it out of the first); planned."""
    people = await kit.seed(150)
    returning = people.ids[50]
    await store.pool.execute("UPDATE subscribers SET status = 'opted_out' WHERE id = $1", returning)
    alert_id = await kit.create_alert(people.audience)
    [task] = await rig.plan(alert_id)
    return people, returning, alert_id, task


async def test_a_range_of_unknown_fate_that_gained_recipients_is_split_when_sent_again(
    rig: Rig, kit: Kit, store: Store
) -> None:
    people, returning, alert_id, task = await _one_away_from_the_first_range(rig, kit, store)
    # a sender planned the shard's two batches and died before sending either; then one who
    # had left came back into the first range
    planned, written = await store.plan_batches(
        alert_id, 0, 0, people.audience, people.ids[0] - 1, people.ids[-1], 100, 16
    )
    assert written and [b.last_id for b in planned] == [people.ids[100], people.ids[149]]
    await store.pool.execute("UPDATE subscribers SET status = 'active' WHERE id = $1", returning)

    assert await rig.run(task) == "done"

    assert sorted(rig.dealer.recipients()) == people.ids  # everyone, once
    assert max(len(b.recipients.subscriber_ids) for b in rig.dealer.sends) == 100
    assert len(rig.dealer.sends) == 3  # the first range went as a batch and its rest
    row = await rig.alert(alert_id)
    assert (row["status"], row["delivered"]) == ("completed", 150)


async def test_an_already_accepted_key_is_settled_from_the_look_up(rig: Rig, kit: Kit) -> None:
    people = await kit.seed(100)
    alert_id = await kit.create_alert(people.audience)
    [task] = await rig.plan(alert_id)
    # accepted before, but its row was lost with the crash of a sender mid-write
    await rig.dealer.send(_batch(alert_id, f"{alert_id}:0:0", people.ids, people.numbers))

    assert await rig.run(task) == "done"

    row = await rig.alert(alert_id)
    assert (row["status"], row["delivered"]) == ("completed", 100)
    assert rig.dealer.attempts == dict.fromkeys(people.ids, 1)


async def test_cancel_stops_the_broadcast_after_the_batches_in_flight(
    rig: Rig, kit: Kit, store: Store
) -> None:
    people = await kit.seed(2_000)
    rig.deps.options = replace(OPTIONS, batch_size=20)
    rig.dealer.latency = 0.05
    alert_id = await kit.create_alert(people.audience)
    [task, *rest] = await rig.plan(alert_id)

    running = asyncio.create_task(rig.run(task))
    await eventually(lambda: len(rig.dealer.sends) >= 3)
    await store.pool.execute("UPDATE alerts SET status = 'cancelled' WHERE id = $1", alert_id)
    rig.deps.control.cancel(alert_id)
    sent = len(rig.dealer.sends)

    assert await running == "cancelled"
    assert len(rig.dealer.sends) <= sent + 4  # only those already in flight
    assert await rig.run(rest[0]) == "cancelled"
    assert rig.dealer.sends[-1].batch_id.split(":")[1] == "0"
    statuses = await store.pool.fetch("SELECT status FROM shards WHERE alert_id = $1", alert_id)
    assert {s[0] for s in statuses} >= {"cancelled"}


async def test_cancel_through_the_database_alone_is_seen_by_the_poll(
    rig: Rig, kit: Kit, store: Store
) -> None:
    people = await kit.seed(250)
    rig.deps.options = replace(OPTIONS, batch_size=10)
    rig.dealer.latency = 0.05
    alert_id = await kit.create_alert(people.audience)
    [task] = await rig.plan(alert_id)
    running = asyncio.create_task(rig.run(task))
    await eventually(lambda: bool(rig.dealer.sends))

    await store.pool.execute("UPDATE alerts SET status = 'cancelled' WHERE id = $1", alert_id)
    await control_feed.poll(rig.deps.control, store)

    assert await running == "cancelled"
    assert len(rig.dealer.recipients()) < 250


async def _pause_in_db(store: Store, alert_id: uuid.UUID, paused: bool) -> None:
    # what the gateway's pause and resume commit before their control records go out
    await store.pool.execute(
        "UPDATE alerts SET paused_at = CASE WHEN $2 THEN now() END WHERE id = $1",
        alert_id,
        paused,
    )


def _in_flight(rig: Rig) -> float:
    """Provider requests this rig's pipes have in flight."""
    value: float = rig.deps.metrics.in_flight._value.get()
    return value


class PauseWatch:
    """Counts the batches a dealer is asked to send while the test holds the alert paused."""

    def __init__(self) -> None:
        self.paused = False
        self.sent_while_paused = 0

    async def before_send(self, batch: OutgoingBatch) -> None:
        if self.paused:
            self.sent_while_paused += 1


@pytest.mark.parametrize("through", ["record", "database"])
async def test_a_pause_holds_every_batch_until_the_resume(
    rig: Rig, kit: Kit, store: Store, through: str
) -> None:
    people = await kit.seed(200)
    rig.deps.options = replace(OPTIONS, batch_size=10)
    rig.deps.in_flight = InFlight(1)
    rig.dealer.latency = 0.05
    watch = PauseWatch()
    rig.dealer.before_send = watch.before_send
    alert_id = await kit.create_alert(people.audience)
    [task] = await rig.plan(alert_id)
    running = asyncio.create_task(rig.run(task))
    await eventually(lambda: len(rig.dealer.sends) >= 3)

    await _pause_in_db(store, alert_id, True)
    if through == "record":
        rig.deps.control.apply(
            AlertControl(alert_id=alert_id, action="pause", requested_at=datetime.now(UTC))
        )
    else:
        await control_feed.poll(rig.deps.control, store)
    # the batch in flight when the pause came may finish; then the shard waits (and a batch
    # that was waiting for its rate budget waits for the resume too)
    await eventually(lambda: rig.deps.control.held_shards(alert_id) >= 1 and _in_flight(rig) == 0)
    watch.paused = True
    held_at = len(rig.dealer.sends)
    assert not running.done()
    # a poll while it stays paused changes nothing
    await control_feed.poll(rig.deps.control, store)
    assert rig.deps.control.held_shards(alert_id) >= 1

    watch.paused = False
    await _pause_in_db(store, alert_id, False)
    if through == "record":
        rig.deps.control.apply(
            AlertControl(alert_id=alert_id, action="resume", requested_at=datetime.now(UTC))
        )
    else:
        await control_feed.poll(rig.deps.control, store)
    assert await running == "done"
    assert watch.sent_while_paused == 0
    assert held_at < 20  # it did stop before the end
    assert rig.dealer.attempts == dict.fromkeys(people.ids, 1)
    row = await rig.alert(alert_id)
    assert (row["status"], row["delivered"]) == ("completed", 200)


async def test_a_shard_started_while_paused_waits_from_its_first_batch(
    rig: Rig, kit: Kit, store: Store
) -> None:
    people = await kit.seed(20)
    alert_id = await kit.create_alert(people.audience)
    [task] = await rig.plan(alert_id)
    await _pause_in_db(store, alert_id, True)

    running = asyncio.create_task(rig.run(task))
    await eventually(lambda: rig.deps.control.held_shards(alert_id) == 1)
    assert rig.dealer.sends == []

    await _pause_in_db(store, alert_id, False)
    await control_feed.poll(rig.deps.control, store)
    assert await running == "done"
    assert rig.dealer.attempts == dict.fromkeys(people.ids, 1)


async def test_a_batch_of_unknown_fate_waits_for_the_resume_too(
    rig: Rig, kit: Kit, store: Store
) -> None:
    people = await kit.seed(200)
    rig.deps.options = replace(OPTIONS, batch_size=10)

    async def die_at_the_third(batch: OutgoingBatch) -> None:
        if batch.batch_id.endswith(":2"):
            raise SenderDied(batch.batch_id)

    rig.dealer.before_send = die_at_the_third
    alert_id = await kit.create_alert(people.audience)
    [task] = await rig.plan(alert_id)
    assert await rig.run(task) == "unsettled"  # rows written `sending`, one never sent
    sent_before = len(rig.dealer.sends)

    # paused while no sender runs it: the batches of unknown fate are looked up, and
    # those the dealer never saw wait for the resume like the rest
    rig.dealer.before_send = None
    await _pause_in_db(store, alert_id, True)
    running = asyncio.create_task(rig.run(task))
    await eventually(lambda: rig.deps.control.held_shards(alert_id) >= 1)
    await eventually(lambda: len(rig.deps.control.watched()) == 1)
    assert len(rig.dealer.sends) == sent_before
    await _pause_in_db(store, alert_id, False)
    await control_feed.poll(rig.deps.control, store)
    assert await running == "done"
    assert sorted(rig.dealer.recipients()) == sorted(people.ids)  # each once


class SenderDied(Exception):
    """The sender died before the dealer saw the batch."""


async def test_a_poll_that_read_before_the_pause_does_not_undo_it(rig: Rig, kit: Kit) -> None:
    people = await kit.seed(5)
    alert_id = await kit.create_alert(people.audience)
    control = rig.deps.control
    control.running(alert_id)

    class Stale:
        """The alerts table as read just before the gateway committed the pause."""

        async def stopped_among(self, alert_ids: object) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
            control.apply(
                AlertControl(alert_id=alert_id, action="pause", requested_at=datetime.now(UTC))
            )
            return set(), set()

    await control_feed.poll(control, Stale())
    assert control.is_paused(alert_id)
    control.finished(alert_id)


async def test_a_pause_past_the_expiry_ends_the_alert_there(
    rig: Rig, kit: Kit, store: Store
) -> None:
    people = await kit.seed(40)
    rig.deps.options = replace(OPTIONS, batch_size=10)
    rig.deps.wall_clock = clock = WallClock()
    expires_at = clock.now + timedelta(minutes=5)
    alert_id = await kit.create_alert(people.audience, expires_at=expires_at)
    [task] = await rig.plan(alert_id)
    await _pause_in_db(store, alert_id, True)
    running = asyncio.create_task(rig.run(task))
    await eventually(lambda: rig.deps.control.held_shards(alert_id) == 1)

    # the expiry comes while it is paused: no resume is needed to end it
    clock.now = expires_at + timedelta(seconds=1)
    rig.deps.control.changes.changed()  # wakes the gate, as its expiry timer would
    await running
    row = await rig.alert(alert_id)
    assert row["status"] == "failed"
    assert row["status_reason"] == "expired while paused, before every recipient was sent to"
    assert rig.dealer.sends == []


@pytest.mark.parametrize(
    ("first", "last", "sent"),
    [(150, 170, [0, 1, 2]), (100, 200, [0, 2])],  # some of the second batch; all of it
)
async def test_opt_outs_during_a_broadcast_are_honoured(
    rig: Rig, kit: Kit, store: Store, first: int, last: int, sent: list[int]
) -> None:
    people = await kit.seed(250)
    leaving = people.ids[first:last]

    async def opt_out_after_first(batch: OutgoingBatch) -> None:
        if batch.batch_id.endswith(":0"):
            await store.pool.execute(
                "UPDATE subscribers SET status = 'opted_out' WHERE id = ANY($1::bigint[])", leaving
            )

    rig.dealer.before_send = opt_out_after_first
    rig.deps.in_flight = InFlight(1)
    alert_id = await kit.create_alert(people.audience)
    [task] = await rig.plan(alert_id)

    assert await rig.run(task) == "done"

    assert sorted(rig.dealer.recipients()) == sorted(set(people.ids) - set(leaving))
    # a planned batch everyone of whom left is removed, not sent
    assert [int(b.batch_id.rsplit(":", 1)[1]) for b in rig.dealer.sends] == sent
    rows = await store.pool.fetch(
        "SELECT seq, status FROM batches WHERE alert_id = $1 ORDER BY seq", alert_id
    )
    assert [tuple(r) for r in rows] == [(seq, "done") for seq in sent]


async def test_normal_shards_wait_while_an_urgent_one_runs(rig: Rig, kit: Kit) -> None:
    people = await kit.seed(100)
    rig.deps.options = replace(OPTIONS, batch_size=10)
    alert_id = await kit.create_alert(people.audience, category="promotional")
    [task] = await rig.plan(alert_id)
    rig.deps.priority.changes = watched = Watched()
    rig.deps.priority.urgent_arrived()

    running = asyncio.create_task(rig.run(task))
    await asyncio.wait_for(watched.waited.wait(), 30)  # its gate holds the first batch
    assert rig.dealer.sends == []

    rig.deps.priority.urgent_done()
    assert await running == "done"
    assert len(rig.dealer.recipients()) == 100


async def test_an_urgent_shard_does_not_wait_for_quiet_hours(rig: Rig, kit: Kit) -> None:
    people = await kit.seed(10)
    rig.deps.held_until = lambda category, now: now + timedelta(hours=10)
    alert_id = await kit.create_alert(people.audience, category="emergency")
    [task] = await rig.plan(alert_id)
    rig.deps.priority.urgent_arrived()

    assert await asyncio.wait_for(rig.run(task), 5) == "done"


async def test_promotional_is_held_in_quiet_hours_without_keeping_its_slot(
    rig: Rig, kit: Kit
) -> None:
    people = await kit.seed(10)
    rig.deps.wall_clock = clock = WallClock()
    until = clock.now + timedelta(hours=2)
    rig.deps.held_until = lambda category, now: until if now < until else None
    alert_id = await kit.create_alert(people.audience, category="promotional")
    [task] = await rig.plan(alert_id)

    pipe = ShardPipe(rig.deps, task, asyncio.Event())
    assert await pipe.run() == "held"
    assert pipe.held_until == until
    assert rig.dealer.sends == []

    clock.now = until
    assert await rig.run(task) == "done"
    assert len(rig.dealer.recipients()) == 10


async def test_a_shard_held_for_quiet_hours_is_not_published_again_by_the_stall_check(
    rig: Rig, kit: Kit, kafka_topics: str
) -> None:
    people = await kit.seed(10)
    rig.deps.held_until = lambda category, now: now + timedelta(hours=10)
    alert_id = await kit.create_alert(people.audience, category="promotional")
    [task] = await rig.plan(alert_id)
    assert await rig.run(task) == "held"
    # held through the night: far longer than the stall check waits for a shard to start
    await rig.store.pool.execute(
        "UPDATE shards SET updated_at = now() - interval '1 hour' WHERE alert_id = $1", alert_id
    )

    await rig.planner.republish_stalled(300)

    status = await rig.store.pool.fetchval(
        "SELECT status FROM shards WHERE alert_id = $1", alert_id
    )
    assert status == "sending"  # taken up by the sender that holds it
    key = f"{alert_id}:0".encode()
    found = await read_back(kafka_topics, topics.BROADCAST_SHARDS, {key})
    assert len(found) == 1, "the held shard's task was published again"


async def test_refused_requests_fail_the_alert_after_the_threshold(
    rig: Rig, kit: Kit, store: Store
) -> None:
    people = await kit.seed(250)
    rig.dealer.refuse = 400
    rig.deps.in_flight = InFlight(1)
    alert_id = await kit.create_alert(people.audience)
    [task] = await rig.plan(alert_id)

    assert await rig.run(task) == "cancelled"

    row = await rig.alert(alert_id)
    assert row["status"] == "failed"
    assert "refused" in row["status_reason"]
    assert len(rig.dealer.sends) == 2
    codes = await store.pool.fetch(
        "SELECT DISTINCT result_code FROM delivery_failures WHERE alert_id = $1", alert_id
    )
    assert [c[0] for c in codes] == [400]


async def test_an_alert_that_expires_while_sending_stops_and_is_failed(
    rig: Rig, kit: Kit, store: Store
) -> None:
    people = await kit.seed(500)
    rig.deps.options = replace(OPTIONS, batch_size=10)
    rig.deps.in_flight = InFlight(2)
    rig.deps.wall_clock = clock = WallClock()
    expires_at = clock.now + timedelta(minutes=5, seconds=30)
    sent_at: list[datetime] = []

    async def a_minute_a_request(batch: OutgoingBatch) -> None:
        sent_at.append(clock.now)
        clock.now += timedelta(minutes=1)

    rig.dealer.before_send = a_minute_a_request
    alert_id = await kit.create_alert(people.audience, expires_at=expires_at)
    [task, *rest] = await rig.plan(alert_id)

    assert await rig.run(task) == "cancelled"
    sent = len(rig.dealer.recipients())
    for other in rest:
        assert await rig.run(other) == "cancelled"

    # six requests before it expired; besides those let through then (a slot each), none
    assert sum(1 for t in sent_at if t < expires_at) == 6
    assert sum(1 for t in sent_at if t >= expires_at) <= 2
    assert len(rig.dealer.recipients()) == sent == 10 * len(sent_at)
    row = await rig.alert(alert_id)
    assert row["status"] == "failed"
    assert "expired" in row["status_reason"]
    assert row["delivered"] == sent


async def test_a_resumed_shard_of_an_expired_alert_sends_nothing(
    rig: Rig, kit: Kit, store: Store
) -> None:
    people = await kit.seed(30)
    alert_id = await kit.create_alert(
        people.audience, expires_at=datetime.now(UTC) + timedelta(minutes=5)
    )
    [task] = await rig.plan(alert_id)
    # held overnight, say, and its expiry passed meanwhile
    await store.pool.execute(
        "UPDATE alerts SET expires_at = now() - interval '1 second' WHERE id = $1", alert_id
    )

    assert await rig.run(task) == "cancelled"

    assert rig.dealer.sends == []
    row = await rig.alert(alert_id)
    assert (row["status"], row["delivered"]) == ("failed", 0)


async def test_a_stopped_shard_resumes_from_its_checkpoint(rig: Rig, kit: Kit) -> None:
    people = await kit.seed(250)
    rig.deps.options = replace(OPTIONS, batch_size=10)
    rig.deps.in_flight = InFlight(2)
    rig.dealer.latency = 0.02
    alert_id = await kit.create_alert(people.audience)
    [task] = await rig.plan(alert_id)
    stopping = asyncio.Event()
    running = asyncio.create_task(rig.run(task, stopping))
    await eventually(lambda: len(rig.dealer.sends) >= 5)

    stopping.set()
    assert await running == "stopped"
    # the batches it had planned and not sent are gone: nothing to look up
    sent = {b.batch_id for b in rig.dealer.sends}
    rows = await rig.store.pool.fetch("SELECT id FROM batches WHERE alert_id = $1", alert_id)
    assert {r[0] for r in rows} == sent
    assert await rig.run(task) == "done"

    assert sorted(rig.dealer.recipients()) == people.ids


async def test_a_group_of_batches_is_settled_in_one_statement_and_counts_once(
    kit: Kit, store: Store
) -> None:
    people = await kit.seed(300)
    alert_id = await kit.create_alert(people.audience)
    planner = Planner(store, Publisher(kit.producer), BroadcasterMetrics(), shard_size=250)
    assert await planner.plan(alert_id) == "planned"
    ids = people.ids
    for shard_no, after, last, count in [(0, ids[0] - 1, ids[249], 3), (1, ids[249], ids[-1], 1)]:
        planned, written = await store.plan_batches(
            alert_id, shard_no, 0, people.audience, after, last, 100, count
        )
        assert written and len(planned) == count
    failed, again = ids[100:102], ids[102:105]
    group = [
        Settlement(f"{alert_id}:0:0", alert_id, 0, ids[99], 100, 100, [], [], [], None),
        Settlement(
            f"{alert_id}:0:1",
            alert_id,
            0,
            ids[199],
            100,
            95,
            failed,
            [3018, 3018],
            ["3018 inactive"] * 2,
            FollowUp(f"{alert_id}:0:10", 10, tuple(again), datetime.now(UTC)),
        ),
        Settlement(f"{alert_id}:0:2", alert_id, 0, ids[249], 50, 50, [], [], [], None),
        Settlement(f"{alert_id}:1:0", alert_id, 1, ids[-1], 50, 50, [], [], [], None),
    ]

    assert await store.settle(alert_id, group) == {s.batch_id for s in group}
    assert await store.settle(alert_id, group) == set()  # settled before: nothing counts twice

    alert = await store.pool.fetchrow(
        "SELECT delivered, failed FROM alerts WHERE id = $1", alert_id
    )
    assert (alert["delivered"], alert["failed"]) == (295, 2)
    shards = await store.pool.fetch(
        "SELECT shard_no, checkpoint_id, sent, delivered, failed FROM shards"
        " WHERE alert_id = $1 ORDER BY shard_no",
        alert_id,
    )
    assert [tuple(r) for r in shards] == [(0, ids[249], 250, 245, 2), (1, ids[-1], 50, 50, 0)]
    first = await store.shard(alert_id, 0)
    assert first is not None and first.next_seq == 11  # after the follow-up's number
    failures = await store.pool.fetch(
        "SELECT subscriber_id, batch_id, result_code FROM delivery_failures WHERE alert_id = $1",
        alert_id,
    )
    assert sorted(tuple(f) for f in failures) == [(i, f"{alert_id}:0:1", 3018) for i in failed]
    held = await store.pool.fetchrow(
        "SELECT status, first_id, last_id, size, subscriber_ids FROM batches WHERE id = $1",
        f"{alert_id}:0:10",
    )
    assert tuple(held) == ("held", again[0], again[-1], 3, again)
    statuses = await store.pool.fetch(
        "SELECT DISTINCT status FROM batches WHERE alert_id = $1 AND id <> $2",
        alert_id,
        f"{alert_id}:0:10",
    )
    assert [r[0] for r in statuses] == ["done"]


@pytest.mark.parametrize("everyone", [True, False])
async def test_planning_writes_the_next_batches_ranges_once(
    kit: Kit, store: Store, everyone: bool
) -> None:
    people = await kit.seed(150)
    alert_id = await kit.create_alert(people.audience)
    planner = Planner(store, Publisher(kit.producer), BroadcasterMetrics(), shard_size=250)
    assert await planner.plan(alert_id) == "planned"
    # everyone: the seeded ids are consecutive, so their range holds nobody else
    audience = Audience(all=True) if everyone else people.audience
    ids, last = people.ids, people.ids[-1]

    planned, written = await store.plan_batches(alert_id, 0, 0, audience, ids[0] - 1, last, 100, 5)
    assert written
    assert [(b.id, b.first_id, b.last_id) for b in planned] == [
        (f"{alert_id}:0:0", ids[0], ids[99]),
        (f"{alert_id}:0:1", ids[100], ids[149]),
    ]
    rows = await store.pool.fetch(
        "SELECT status, first_id, last_id, size FROM batches WHERE alert_id = $1 ORDER BY seq",
        alert_id,
    )
    assert [tuple(r) for r in rows] == [
        ("sending", ids[0], ids[99], 100),
        ("sending", ids[100], ids[149], 50),
    ]
    # the same numbers again: nothing written, and said so
    assert await store.plan_batches(alert_id, 0, 0, audience, ids[0] - 1, last, 100, 5) == (
        [],
        False,
    )
    # past the end: nothing to plan, not a conflict
    assert await store.plan_batches(alert_id, 0, 2, audience, last, last, 100, 5) == ([], True)


async def test_a_planned_batch_that_gained_recipients_is_split_not_overfilled(
    rig: Rig, kit: Kit, store: Store
) -> None:
    people, returning, alert_id, task = await _one_away_from_the_first_range(rig, kit, store)
    plan = store.plan_batches

    async def plan_then_return(*args: Any, **kwargs: Any) -> Any:
        planned = await plan(*args, **kwargs)
        # back in the audience after the batches were planned, before they are read
        await store.pool.execute(
            "UPDATE subscribers SET status = 'active' WHERE id = $1", returning
        )
        return planned

    store.plan_batches = plan_then_return  # type: ignore[method-assign]
    try:
        assert await rig.run(task) == "done"
    finally:
        del store.plan_batches

    sends = {b.batch_id: b.recipients.subscriber_ids for b in rig.dealer.sends}
    assert (
        sends
        == {
            f"{alert_id}:0:0": people.ids[
                :100
            ],  # ranges of 100 planned: ids[0..100] without ids[50]
            f"{alert_id}:0:2": people.ids[100:101],  # the rest of the first range, split off
            f"{alert_id}:0:1": people.ids[101:],
        }
    )
    rows = await store.pool.fetch(
        "SELECT id, status, first_id, last_id FROM batches WHERE alert_id = $1", alert_id
    )
    assert sorted(tuple(r) for r in rows) == [
        (f"{alert_id}:0:0", "done", people.ids[0], people.ids[99]),
        (f"{alert_id}:0:1", "done", people.ids[101], people.ids[149]),
        (f"{alert_id}:0:2", "done", people.ids[100], people.ids[100]),
    ]


class PublishingFailsOnce(Publisher):
    """Kafka is away for the first group of delivery events."""

    failed = False

    async def deliveries(self, batches: Sequence[dict[str, Any]]) -> None:
        if not self.failed:
            self.failed = True
            raise ConnectionError("the broker is away")
        await super().deliveries(batches)


async def test_a_batch_left_unsettled_stops_its_shard_and_is_looked_up_when_run_again(
    rig: Rig, kit: Kit, store: Store, kafka_topics: str
) -> None:
    people = await kit.seed(250)
    rig.deps.settler = Settler(store, PublishingFailsOnce(kit.producer), window=0.0)
    alert_id = await kit.create_alert(people.audience)
    [task] = await rig.plan(alert_id)

    assert await rig.run(task) == "unsettled"
    assert await rig.run(task) == "done"

    # the batch whose events failed was sent once, and settled from the provider's records
    assert sorted(rig.dealer.recipients()) == people.ids
    row = await rig.alert(alert_id)
    assert (row["status"], row["delivered"]) == ("completed", 250)
    sent = {b.batch_id for b in rig.dealer.sends}
    events = await events_of(
        kafka_topics, topics.DELIVERIES, alert_id, lambda found: {e.id for e in found} >= sent
    )
    assert {e.id for e in events} == sent


async def test_a_finished_shard_is_skipped(rig: Rig, kit: Kit) -> None:
    people = await kit.seed(10)
    alert_id = await kit.create_alert(people.audience)
    [task] = await rig.plan(alert_id)
    assert await rig.run(task) == "done"

    assert await rig.run(task) == "skipped"
    assert len(rig.dealer.sends) == 1


def _batch(
    alert_id: uuid.UUID,
    batch_id: str,
    ids: list[int],
    numbers: list[str],
    category: Category = "public",
) -> OutgoingBatch:
    return OutgoingBatch(
        batch_id=batch_id,
        alert_id=alert_id,
        category=category,
        message_type="ALIMTALK",
        title="t",
        body="b",
        buttons=(),
        recipients=Recipients(ids, numbers, [""] * len(ids)),
    )


async def test_pause_holds_the_next_batches_until_resume(rig: Rig, kit: Kit) -> None:
    people = await kit.seed(100)
    rig.deps.options = replace(OPTIONS, batch_size=10)
    alert_id = await kit.create_alert(people.audience)
    [task] = await rig.plan(alert_id)
    now = datetime.now(UTC)
    rig.deps.control.changes = watched = Watched()
    rig.deps.control.apply(AlertControl(alert_id=alert_id, action="pause", requested_at=now))

    running = asyncio.create_task(rig.run(task))
    await asyncio.wait_for(watched.waited.wait(), 30)  # its gate holds the first batch
    assert rig.dealer.sends == []

    rig.deps.control.apply(AlertControl(alert_id=alert_id, action="resume", requested_at=now))
    assert await running == "done"
    assert len(rig.dealer.recipients()) == 100


async def test_progress_events_carry_the_counters_so_far(
    rig: Rig, kit: Kit, kafka_topics: str
) -> None:
    people = await kit.seed(300)
    rig.deps.options = replace(OPTIONS, batch_size=50)
    rig.deps.progress.seconds = 0.0
    rig.deps.in_flight = InFlight(1)
    alert_id = await kit.create_alert(people.audience)
    [task, *rest] = await rig.plan(alert_id)
    for each in (task, *rest):
        assert await rig.run(each) == "done"

    found = await events_of(kafka_topics, topics.ALERT_EVENTS, alert_id, has_completed)

    progress = [
        AlertLifecycleData.model_validate(e.data)
        for e in found
        if e.type == "dev.allim.alert.progress"
    ]
    assert progress
    assert all(p.targeted == 300 and p.status == "sending" for p in progress)
    assert all(p.delivered + p.pending == 300 for p in progress)
    kinds = [e.type for e in found]
    assert (kinds[0], kinds[-1]) == ("dev.allim.alert.started", "dev.allim.alert.completed")


async def test_a_cancelled_alert_is_told_once_with_its_final_numbers_and_reason(
    rig: Rig, kit: Kit, store: Store, kafka_topics: str
) -> None:
    people = await kit.seed(750)
    rig.deps.options = replace(OPTIONS, batch_size=20)
    alert_id = await kit.create_alert(people.audience)
    first, second, third = await rig.plan(alert_id)
    assert await rig.run(first) == "done"
    # the second shard's next requests wait at the dealer: in flight when the cancel comes
    let_through = asyncio.Event()
    waiting = 0

    async def held_at_will(batch: OutgoingBatch) -> None:
        nonlocal waiting
        waiting += 1
        await let_through.wait()
        waiting -= 1

    rig.dealer.before_send = held_at_will
    running = asyncio.create_task(rig.run(second))
    await eventually(lambda: waiting > 0, what="a request held in flight")
    reason = "Cancelled by an operator."
    await store.pool.execute(
        "UPDATE alerts SET status = 'cancelled', status_reason = $2 WHERE id = $1",
        alert_id,
        reason,
    )
    rig.deps.control.cancel(alert_id)

    # the third shard stops first, while the second still has requests in flight: the
    # alert's numbers are not final yet, so its end is not told yet
    assert await rig.run(third) == "cancelled"
    let_through.set()
    assert await running == "cancelled"
    # the shard that finished last, run again as after a crash, tells the same end again
    assert await rig.run(second) == "skipped"
    row = await rig.alert(alert_id)

    def told_twice(events: list[CloudEvent]) -> bool:
        return sum(e.type == "dev.allim.alert.cancelled" for e in events) >= 2

    found = await events_of(kafka_topics, topics.ALERT_EVENTS, alert_id, told_twice)
    cancelled = [e for e in found if e.type == "dev.allim.alert.cancelled"]
    assert [e.id for e in cancelled] == [f"{alert_id}:cancelled"] * 2
    assert cancelled[0].data == cancelled[1].data
    data = AlertLifecycleData.model_validate(cancelled[0].data)
    assert (data.status, data.delivered, data.failed, data.reason) == (
        "cancelled",
        row["delivered"],
        row["failed"],
        reason,
    )
    assert 250 < data.delivered < 750
    assert data.pending == 750 - data.delivered
    assert "dev.allim.alert.completed" not in {e.type for e in found}
