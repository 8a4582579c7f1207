"""The planner against the real PostgreSQL and Kafka."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from tests.broadcaster.kits import Kit

from broadcaster.metrics import BroadcasterMetrics
from broadcaster.planner import Planner, decide
from broadcaster.publishing import Publisher
from broadcaster.records import Counters, PlanState
from broadcaster.store import Store
from common import topics
from common.messages import Audience, Category, ShardTask
from common.readback import read_back

pytestmark = pytest.mark.integration


@pytest.fixture
def planner(store: Store, producer: AIOKafkaProducer) -> Planner:
    return Planner(store, Publisher(producer), BroadcasterMetrics(), shard_size=500)


async def shard_tasks(
    bootstrap: str, topic: str, alert_id: uuid.UUID, shards: int, count: int
) -> list[ShardTask]:
    """The alert's tasks for shards 0 to `shards - 1` on `topic`, read from the start once
    `count` are there (and a little longer, so that one more shows)."""
    keys = {f"{alert_id}:{n}" for n in range(shards)}
    found = await read_back(bootstrap, topic, keys, enough=lambda found: len(found) >= count)
    return [ShardTask.model_validate_json(r.value) for r in found]


async def shards(store: Store, alert_id: uuid.UUID) -> list[tuple[int, int, int]]:
    rows = await store.pool.fetch(
        "SELECT shard_no, first_id, last_id FROM shards WHERE alert_id = $1 ORDER BY shard_no",
        alert_id,
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def test_the_audience_is_split_into_keyset_shards_and_published(
    planner: Planner, kit: Kit, store: Store, kafka_topics: str
) -> None:
    people = await kit.seed(1_050)
    await kit.seed(30)  # another district: not in the audience
    alert_id = await kit.create_alert(people.audience)

    assert await planner.plan(alert_id) == "planned"

    ids = people.ids
    planned = await shards(store, alert_id)
    assert [no for no, _, _ in planned] == [0, 1, 2]
    assert planned[0][2] == ids[499] and planned[1][2] == ids[999] and planned[2][2] == ids[-1]
    assert planned[1][1] == ids[499] + 1 and planned[2][1] == ids[999] + 1
    row = await store.pool.fetchrow("SELECT status, targeted FROM alerts WHERE id = $1", alert_id)
    assert (row["status"], row["targeted"]) == ("sending", 1_050)
    tasks = await shard_tasks(kafka_topics, topics.BROADCAST_SHARDS, alert_id, 3, count=3)
    assert sorted((t.shard_no, t.category) for t in tasks) == [
        (0, "public"),
        (1, "public"),
        (2, "public"),
    ]


async def test_an_audience_of_whole_shards_ends_with_a_full_shard(
    planner: Planner, kit: Kit, store: Store
) -> None:
    people = await kit.seed(1_000)
    alert_id = await kit.create_alert(people.audience)

    assert await planner.plan(alert_id) == "planned"

    ids = people.ids
    assert await shards(store, alert_id) == [(0, 1, ids[499]), (1, ids[499] + 1, ids[-1])]


async def test_a_redelivered_request_does_not_plan_twice(
    planner: Planner, kit: Kit, store: Store
) -> None:
    people = await kit.seed(600)
    alert_id = await kit.create_alert(people.audience)
    assert await planner.plan(alert_id) == "planned"
    before = await shards(store, alert_id)
    await kit.seed(10)

    assert await planner.plan(alert_id) == "republished"

    assert await shards(store, alert_id) == before
    targeted = await store.pool.fetchval("SELECT targeted FROM alerts WHERE id = $1", alert_id)
    assert targeted == 600


async def test_emergency_shards_go_to_the_urgent_topic(
    planner: Planner, kit: Kit, kafka_topics: str
) -> None:
    people = await kit.seed(20)
    alert_id = await kit.create_alert(people.audience, category="emergency")

    await planner.plan(alert_id)

    urgent = await shard_tasks(kafka_topics, topics.BROADCAST_SHARDS_URGENT, alert_id, 1, count=1)
    assert [(t.shard_no, t.category) for t in urgent] == [(0, "emergency")]


async def test_tags_filter_the_audience(planner: Planner, kit: Kit, store: Store) -> None:
    tagged = await kit.seed(40, tags=["flood", "bus"])
    await kit.seed(25, tags=["bus"])
    alert_id = await kit.create_alert(Audience(tags=["flood"]))

    await planner.plan(alert_id)

    targeted = await store.pool.fetchval("SELECT targeted FROM alerts WHERE id = $1", alert_id)
    flooded = await store.pool.fetchval(
        "SELECT count(*) FROM subscribers WHERE status = 'active' AND 'flood' = ANY(tags)"
    )
    assert targeted == flooded >= len(tagged.ids)


async def test_a_scheduled_alert_waits_for_send_at(
    planner: Planner, kit: Kit, store: Store
) -> None:
    people = await kit.seed(10)
    later = datetime.now(UTC) + timedelta(hours=1)
    alert_id = await kit.create_alert(people.audience, send_at=later)

    assert await planner.plan(alert_id) == "scheduled"
    assert await shards(store, alert_id) == []
    await planner.plan_due()
    assert await shards(store, alert_id) == []

    await store.pool.execute(
        "UPDATE alerts SET send_at = now() - interval '1 second' WHERE id = $1", alert_id
    )
    await planner.plan_due()

    row = await store.pool.fetchrow("SELECT status, targeted FROM alerts WHERE id = $1", alert_id)
    assert (row["status"], row["targeted"]) == ("sending", 10)


class StartedFailsOnce(Publisher):
    """A publisher whose first `started` event fails, as when the broker goes away."""

    failed = False

    async def lifecycle(
        self,
        kind: str,
        alert_id: uuid.UUID,
        category: Category,
        counters: Counters | None,
        *,
        reason: str | None = None,
    ) -> None:
        if kind == "started" and not self.failed:
            self.failed = True
            raise KafkaConnectionError()
        await super().lifecycle(kind, alert_id, category, counters, reason=reason)


async def test_a_scheduled_alert_whose_publish_failed_goes_out_at_the_next_poll(
    kit: Kit, store: Store, producer: AIOKafkaProducer, kafka_topics: str
) -> None:
    planner = Planner(store, StartedFailsOnce(producer), BroadcasterMetrics(), shard_size=500)
    people = await kit.seed(600)
    alert_id = await kit.create_alert(
        people.audience, send_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    await store.pool.execute("UPDATE alerts SET status = 'scheduled' WHERE id = $1", alert_id)

    with pytest.raises(KafkaConnectionError):
        await planner.plan_due()  # committed, then the broker went away
    assert await planner.plan_due() == 1

    started = await lifecycle_ids(kafka_topics, alert_id)
    assert started == [f"{alert_id}:started"]
    tasks = await shard_tasks(kafka_topics, topics.BROADCAST_SHARDS, alert_id, 2, count=2)
    assert {t.shard_no for t in tasks} == {0, 1}
    assert await planner.plan_due() == 0


async def _sending(
    store: Store, alert_id: uuid.UUID, started_ago: float, deliver_within: int, settled: int
) -> None:
    # the broadcaster's figures for an alert of 100 recipients, `settled` of them done
    await store.pool.execute(
        "UPDATE alerts SET status = 'sending', targeted = 100, delivered = $2,"
        " started_at = now() - make_interval(secs => $3), deliver_within = $4 WHERE id = $1",
        alert_id,
        settled,
        started_ago,
        deliver_within,
    )


async def test_alerts_that_miss_their_deadline_are_counted(
    planner: Planner, kit: Kit, store: Store
) -> None:
    people = await kit.seed(1)
    passed, behind, on_time, paused = [await kit.create_alert(people.audience) for _ in range(4)]
    await _sending(store, passed, started_ago=120, deliver_within=60, settled=99)
    # 10 of 100 in 60 s: the other 90 need 540 s more, past the 300 s promised
    await _sending(store, behind, started_ago=60, deliver_within=300, settled=10)
    await _sending(store, on_time, started_ago=10, deliver_within=300, settled=50)
    await _sending(store, paused, started_ago=400, deliver_within=300, settled=50)
    await store.pool.execute("UPDATE alerts SET paused_at = now() WHERE id = $1", paused)

    late = set(await store.late_alerts())
    assert {passed, behind, paused} <= late
    assert on_time not in late
    assert await planner.measure_late() == len(late)
    assert planner.metrics.alerts_late._value.get() == len(late)


async def test_an_expired_alert_is_not_sent(planner: Planner, kit: Kit, store: Store) -> None:
    people = await kit.seed(10)
    alert_id = await kit.create_alert(
        people.audience, expires_at=datetime.now(UTC) - timedelta(minutes=1)
    )

    assert await planner.plan(alert_id) == "expired"

    row = await store.pool.fetchrow(
        "SELECT status, status_reason FROM alerts WHERE id = $1", alert_id
    )
    assert row["status"] == "failed"
    assert "expired" in row["status_reason"]
    assert await shards(store, alert_id) == []


async def test_a_cancelled_alert_is_not_planned(planner: Planner, kit: Kit, store: Store) -> None:
    people = await kit.seed(10)
    alert_id = await kit.create_alert(people.audience, status="cancelled")

    assert await planner.plan(alert_id) == "cancelled"
    assert await shards(store, alert_id) == []


async def test_an_empty_audience_completes_at_once(
    planner: Planner, kit: Kit, store: Store
) -> None:
    alert_id = await kit.create_alert(Audience(districts=["nobody-lives-here"]))

    assert await planner.plan(alert_id) == "planned"

    row = await store.pool.fetchrow("SELECT status, targeted FROM alerts WHERE id = $1", alert_id)
    assert (row["status"], row["targeted"]) == ("completed", 0)


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Any = ()


async def test_a_poison_request_goes_to_the_dead_letters(
    planner: Planner, kafka_topics: str
) -> None:
    marker = uuid.uuid4().hex.encode()
    record = Record(topics.ALERTS_REQUESTED, 0, 42, marker, b'{"alert_id": "not a uuid"}')

    assert await planner.handle(record) is None

    found = await read_back(kafka_topics, topics.DEAD_LETTER, {marker})
    assert len(found) == 1, found
    headers = dict(found[0].headers)
    assert headers["dlq_topic"] == topics.ALERTS_REQUESTED.encode()
    assert headers["dlq_offset"] == b"42"
    assert b"invalid AlertRequested" in headers["dlq_reason"]


async def test_a_shard_nobody_started_is_published_again(
    planner: Planner, kit: Kit, store: Store, kafka_topics: str
) -> None:
    people = await kit.seed(600)
    alert_id = await kit.create_alert(people.audience)
    await planner.plan(alert_id)
    await store.pool.execute(
        "UPDATE shards SET status = 'done' WHERE alert_id = $1 AND shard_no = 0", alert_id
    )
    await store.pool.execute(
        "UPDATE shards SET updated_at = now() - interval '10 minutes' WHERE alert_id = $1",
        alert_id,
    )

    assert await planner.republish_stalled(300) >= 1
    assert await planner.republish_stalled(300) == 0

    tasks = await shard_tasks(kafka_topics, topics.BROADCAST_SHARDS, alert_id, 2, count=3)
    assert sorted(t.shard_no for t in tasks) == [0, 1, 1]


async def test_a_plan_committed_but_never_published_goes_out_on_the_redelivered_request(
    planner: Planner, kit: Kit, store: Store, kafka_topics: str
) -> None:
    people = await kit.seed(1_050)
    alert_id = await kit.create_alert(people.audience)
    # what a planner that died between its commit and its publish left: shards, no tasks
    written = await store.plan_alert(alert_id, 500, lambda state: decide(state, datetime.now(UTC)))
    assert (written.outcome, written.shards) == ("planned", (0, 1, 2))
    await store.pool.execute(
        "UPDATE shards SET status = 'done' WHERE alert_id = $1 AND shard_no = 0", alert_id
    )

    assert await planner.plan(alert_id) == "republished"

    tasks = await shard_tasks(kafka_topics, topics.BROADCAST_SHARDS, alert_id, 3, count=2)
    assert sorted(t.shard_no for t in tasks) == [1, 2]
    started = await lifecycle_ids(kafka_topics, alert_id)
    assert started == [f"{alert_id}:started"]


async def lifecycle_ids(bootstrap: str, alert_id: uuid.UUID) -> list[str]:
    """The ids of the alert's lifecycle events, read from the start once one is there."""
    found = await read_back(bootstrap, topics.ALERT_EVENTS, {str(alert_id)})
    return [dict(r.headers)["ce_id"].decode() for r in found]


NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "send_at", "expires_at", "outcome"),
    [
        ("queued", None, None, "planned"),
        ("queued", NOW + timedelta(minutes=1), None, "scheduled"),
        ("scheduled", NOW, None, "planned"),
        ("queued", None, NOW, "expired"),
        ("scheduled", NOW + timedelta(minutes=1), NOW, "expired"),
        ("sending", None, None, "republished"),
        ("cancelled", None, None, "cancelled"),
        ("completed", None, None, "finished"),
        ("failed", None, None, "finished"),
    ],
)
def test_what_planning_does_follows_from_the_alert_s_row(
    status: str, send_at: datetime | None, expires_at: datetime | None, outcome: str
) -> None:
    assert decide(PlanState(status, send_at, expires_at), NOW) == outcome
