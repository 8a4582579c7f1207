"""RollupStore against the real PostgreSQL: exact readers, forwards, dedupe, rollups."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import asyncpg
import pytest
from tests.analytics.facts import Facts

from analytics.records import Delivery, Tap
from analytics.store import RollupStore

pytestmark = pytest.mark.integration


async def _stats(pool: asyncpg.Pool, alert: uuid.UUID) -> asyncpg.Record:
    async with pool.acquire() as connection:
        row = await connection.fetchrow("SELECT * FROM alert_stats WHERE alert_id = $1", alert)
    assert row is not None
    return row


# r1 opens its own link; r2 opens r1's forwarded link, then its own (still a forwarded
# reader: its first tap was someone else's link); r3 opens its own link; r4 opens r3's.
STORY = [(1, "r1"), (1, "r1"), (1, "r2"), (2, "r2"), (3, "r3"), (3, "r4"), (3, "r3")]


@pytest.mark.parametrize("split", [0, 1, 3, 5, len(STORY)])
async def test_readers_and_forwards_are_exact_however_the_taps_are_split_into_polls(
    store: RollupStore, pool: asyncpg.Pool, facts: type[Facts], split: int
) -> None:
    alert = uuid.uuid4()
    taps = [facts.tap(alert, subscriber, reader) for subscriber, reader in STORY]
    for part in (taps[:split], taps[split:]):
        if part:
            await store.apply(facts.decoded(*part))

    row = await _stats(pool, alert)
    assert row["readers"] == 4
    assert row["first_readers"] == 3  # links 1, 2 and 3 were opened
    assert row["forwarded_readers"] == 2  # r2 and r4
    assert row["taps"] == len(STORY)
    async with pool.acquire() as connection:
        firsts = dict(
            await connection.fetch(
                "SELECT subscriber_id, reader_id FROM token_first_readers WHERE alert_id = $1",
                alert,
            )
        )
    assert firsts == {1: "r1", 2: "r2", 3: "r3"}


async def test_an_event_applied_again_is_not_counted_again(
    store: RollupStore, pool: asyncpg.Pool, facts: type[Facts]
) -> None:
    alert = uuid.uuid4()
    first = facts.decoded(
        facts.tap(alert, 1, "a"), facts.tap(alert, 2, "b"), facts.delivery(alert, 0, 10)
    )
    applied = await store.apply(first)
    assert (applied.new_events, applied.duplicates) == (3, 0)

    replay = facts.decoded(*first.taps, facts.tap(alert, 2, "c"), *first.deliveries)
    applied = await store.apply(replay)

    assert (applied.new_events, applied.duplicates) == (1, 3)
    row = await _stats(pool, alert)
    assert (row["readers"], row["forwarded_readers"], row["taps"], row["delivered"]) == (
        3,
        1,
        3,
        10,
    )


async def test_a_consumer_name_has_its_own_processed_events(
    pool: asyncpg.Pool, facts: type[Facts]
) -> None:
    alert = uuid.uuid4()
    poll = facts.decoded(facts.tap(alert, 1, "a"))
    one, other = (
        RollupStore(pool, "one-" + alert.hex[:8]),
        RollupStore(pool, "two-" + alert.hex[:8]),
    )
    assert (await one.apply(poll)).new_events == 1
    # the second name applies the event too: it is a separate consumer with its own counts
    assert (await other.apply(poll)).new_events == 1
    assert (await one.apply(poll)).new_events == 0


async def test_deliveries_and_lifecycle_fill_the_rollup(
    store: RollupStore, pool: asyncpg.Pool, facts: type[Facts]
) -> None:
    alert = uuid.uuid4()
    t0 = facts.delivery(alert, 0, 1).time
    await store.apply(
        facts.decoded(
            facts.lifecycle(alert, "started", 1000, at=t0),
            facts.delivery(alert, 0, 495, {"3018": 3, "3019": 2}, at=t0 + timedelta(seconds=5)),
        )
    )
    await store.apply(
        facts.decoded(
            facts.delivery(alert, 1, 497, {"3018": 1, "5000": 2}, at=t0 + timedelta(seconds=9)),
            facts.lifecycle(
                alert, "completed", 1000, at=t0 + timedelta(seconds=10), status="completed"
            ),
            facts.tap(alert, 7, "x"),
        )
    )

    row = await _stats(pool, alert)
    assert row["category"] == "public"
    assert row["targeted"] == 1000
    assert (row["delivered"], row["failed"]) == (992, 8)
    assert json.loads(row["failed_by_reason"]) == {"3018": 4, "3019": 2, "5000": 2}
    assert row["status"] == "completed"
    assert row["started_at"] == t0
    assert row["completed_at"] == t0 + timedelta(seconds=10)
    assert row["first_delivery_at"] == t0 + timedelta(seconds=5)
    assert row["last_delivery_at"] == t0 + timedelta(seconds=9)
    (snapshot,) = await store.snapshots([alert])
    assert snapshot.read_rate == pytest.approx(1 / 992)
    assert snapshot.forward_rate == 0.0


# KakaoTalk delivered 10 (subscribers 1-10); SMS reached 101 (1000) and 102 (3005, sent,
# unconfirmed) of those it refused, and failed 103. Readers: a opens 101's link, b opens 102's,
# c opens 1's, d opens the link a forwarded (101's): a, b and d read what SMS sent.
def _channel_story(facts: type[Facts], alert: uuid.UUID) -> list[Tap | Delivery]:
    return [
        facts.tap(alert, 101, "a"),
        facts.delivery(alert, 0, 10),
        facts.tap(alert, 1, "c"),
        facts.sms_delivery(alert, 1, {101: 1000, 102: 3005, 103: 4000}),
        facts.tap(alert, 102, "b"),
        facts.tap(alert, 101, "d"),
    ]


@pytest.mark.parametrize("split", [0, 1, 2, 3, 4, 5, 6])
async def test_readers_count_for_the_channel_whose_link_they_opened_in_any_order(
    store: RollupStore, pool: asyncpg.Pool, facts: type[Facts], split: int
) -> None:
    alert = uuid.uuid4()
    story = _channel_story(facts, alert)
    # the tap and the delivery it follows may be applied in either order, or together
    for part in (story[split:], story[:split]):
        if part:
            await store.apply(facts.decoded(*part))

    row = await _stats(pool, alert)
    assert (row["delivered"], row["failed"], row["readers"]) == (12, 1, 4)
    assert (row["sms_delivered"], row["sms_failed"], row["sms_readers"]) == (2, 1, 3)
    [snapshot] = await store.snapshots([alert])
    kakao, sms = snapshot.channels["kakao"], snapshot.channels["sms"]
    assert (kakao.delivered, kakao.failed, kakao.readers, kakao.read_rate) == (10, 0, 1, 0.1)
    assert (sms.delivered, sms.failed, sms.readers, sms.read_rate) == (2, 1, 3, 1.5)


async def test_two_consumers_applying_a_fallback_and_its_taps_at_once_miss_no_reader(
    pool: asyncpg.Pool, facts: type[Facts]
) -> None:
    # the deliveries go to one consumer and the taps to another (their partitions may be
    # assigned apart): each must see the rows the other commits, whichever commits first
    alerts = [uuid.uuid4() for _ in range(20)]
    deliveries, taps = RollupStore(pool, "deliveries"), RollupStore(pool, "taps")
    for alert in alerts:
        sms = facts.sms_delivery(alert, 1, dict.fromkeys(range(1, 201), 1000))
        readers = [facts.tap(alert, n, f"r{n}") for n in range(1, 201)]
        await asyncio.gather(
            deliveries.apply(facts.decoded(sms)), taps.apply(facts.decoded(*readers))
        )

    for alert in alerts:
        row = await _stats(pool, alert)
        assert (row["readers"], row["sms_delivered"], row["sms_readers"]) == (200, 200, 200)


async def test_a_snapshot_has_no_read_rate_before_any_delivery(
    store: RollupStore, facts: type[Facts]
) -> None:
    alert = uuid.uuid4()
    # the tap's batch has not reached analytics yet (another partition, another topic)
    await store.apply(
        facts.decoded(facts.lifecycle(alert, "started", 10), facts.tap(alert, 1, "a"))
    )

    (snapshot,) = await store.snapshots([alert])
    assert (snapshot.delivered, snapshot.readers) == (0, 1)
    assert snapshot.read_rate is None
    assert snapshot.forward_rate == 0.0


async def test_reads_per_minute(store: RollupStore, pool: asyncpg.Pool, facts: type[Facts]) -> None:
    alert = uuid.uuid4()
    t0 = facts.delivery(alert, 0, 1).time
    await store.apply(
        facts.decoded(
            facts.tap(alert, 1, "a", at=t0 + timedelta(seconds=10)),
            facts.tap(alert, 1, "a", at=t0 + timedelta(seconds=50)),
            facts.tap(alert, 2, "b", at=t0 + timedelta(seconds=70)),
        )
    )
    await store.apply(facts.decoded(facts.tap(alert, 1, "c", at=t0 + timedelta(seconds=80))))

    async with pool.acquire() as connection:
        rows = await connection.fetch(
            "SELECT minute, reads, new_readers FROM alert_reads_minute"
            " WHERE alert_id = $1 ORDER BY minute",
            alert,
        )
    assert [tuple(r) for r in rows] == [(t0, 2, 1), (t0 + timedelta(minutes=1), 2, 2)]


async def test_recent_lists_the_latest_changed_alerts_first(
    store: RollupStore, facts: type[Facts]
) -> None:
    older, newer = uuid.uuid4(), uuid.uuid4()
    await store.apply(facts.decoded(facts.tap(older, 1, "a")))
    await store.apply(facts.decoded(facts.tap(newer, 1, "a")))
    assert (await store.recent(2)) == [newer, older]


async def test_forget_drops_only_old_ids_of_its_own_consumer(
    pool: asyncpg.Pool, facts: type[Facts]
) -> None:
    alert = uuid.uuid4()
    old, recent = facts.tap(alert, 1, "a"), facts.tap(alert, 2, "b")
    mine, others = "mine-" + alert.hex[:8], "other-" + alert.hex[:8]
    store, other = RollupStore(pool, mine), RollupStore(pool, others)
    await store.apply(facts.decoded(old, recent))
    await other.apply(facts.decoded(old))
    async with pool.acquire() as connection:
        await connection.execute(
            "UPDATE processed_events SET processed_at = now() - interval '3 days'"
            " WHERE event_id = $1",
            old.event_id,
        )

    assert await store.forget(timedelta(days=2)) == 1

    async with pool.acquire() as connection:
        left = await connection.fetch(
            "SELECT consumer, event_id FROM processed_events WHERE event_id = ANY($1::text[])",
            [old.event_id, recent.event_id],
        )
    assert sorted(tuple(r) for r in left) == sorted(
        [(others, old.event_id), (mine, recent.event_id)]
    )
