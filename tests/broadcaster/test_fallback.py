"""The SMS/LMS fallback in the shard pipe, on the real store and broker with fake dealers:
who falls back, exactly once (also across a crash), how it is counted and told, and the
advertising hours of a promotional text."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from tests.broadcaster.kits import Kit
from tests.broadcaster.rigs import OPTIONS, Dealer, Rig, Unlimited, WallClock, events_of, make_rig

from broadcaster.deps import SmsChannel
from broadcaster.errors import RetryableProviderError
from broadcaster.providers.base import UNREACHABLE, BatchResult, OutgoingBatch
from broadcaster.store import Store
from common import topics
from common.messages import DeliveryBatchData

pytestmark = pytest.mark.integration

INACTIVE, NOT_KAKAO, BLOCKED, UNCONFIRMED = 3018, 3019, 3020, 3005


@pytest.fixture
def rig(store: Store, producer: AIOKafkaProducer) -> Rig:
    made = make_rig(store, producer)
    made.sms = Dealer()
    made.deps.sms = SmsChannel(made.sms, Unlimited())
    return made


async def _with_fallback(
    store: Store, alert_id: uuid.UUID, codes: tuple[int, ...] = (INACTIVE, NOT_KAKAO, BLOCKED)
) -> None:
    # what the gateway stores for an alert that falls back (gateway.fallback)
    await store.pool.execute(
        "UPDATE alerts SET fallback_codes = $2, sms_kind = 'LMS', sms_subject = '태풍 대비',"
        " sms_text = $3 WHERE id = $1",
        alert_id,
        list(codes),
        "강풍에 대비하세요.\n#{link}",
    )


async def test_those_kakaotalk_refuses_get_exactly_one_sms(
    rig: Rig, kit: Kit, store: Store, kafka_topics: str
) -> None:
    people = await kit.seed(120)
    refused = {people.ids[3]: INACTIVE, people.ids[50]: NOT_KAKAO, people.ids[110]: BLOCKED}
    rig.deps.options = replace(OPTIONS, batch_size=100)
    rig.dealer.code = lambda sid, attempt: refused.get(sid, 1000)
    alert_id = await kit.create_alert(people.audience)
    await _with_fallback(store, alert_id)
    [task] = await rig.plan(alert_id)

    assert await rig.run(task) == "done"

    assert sorted(rig.sms.recipients()) == sorted(refused)
    for sms in rig.sms.sends:  # a fallback batch per KakaoTalk batch with refusals
        assert (sms.message_type, sms.title) == ("LMS", "태풍 대비")
        assert sms.body == "강풍에 대비하세요.\n#{link}"
        assert all("/r/" in link for link in sms.recipients.links)
    row = await rig.alert(alert_id)
    # one delivered recipient each, whichever channel reached them
    assert (row["status"], row["delivered"], row["failed"]) == ("completed", 120, 0)
    channels = await store.pool.fetch(
        "SELECT channel, sum(delivered) AS delivered FROM batches WHERE alert_id = $1"
        " GROUP BY channel ORDER BY channel",
        alert_id,
    )
    assert [(r["channel"], r["delivered"]) for r in channels] == [("kakao", 117), ("sms", 3)]
    events = await events_of(kafka_topics, topics.DELIVERIES, alert_id, lambda e: len(e) >= 4)
    told = [DeliveryBatchData.model_validate(e.data) for e in events]
    by_channel: dict[str, int] = {}
    for event, batch in zip(events, told, strict=True):
        by_channel[event.data["channel"]] = (
            by_channel.get(event.data["channel"], 0) + batch.delivered
        )
    assert by_channel == {"kakao": 117, "sms": 3}
    # Prometheus counts each channel on its own: KakaoTalk's refusals as its failures
    registry = rig.deps.metrics.registry
    for channel, sent, delivered in (("kakao", 120, 117), ("sms", 3, 3)):
        labels = {"category": "public", "channel": channel}
        assert registry.get_sample_value("allim_broadcaster_recipients_sent_total", labels) == sent
        assert (
            registry.get_sample_value("allim_broadcaster_recipients_delivered_total", labels)
            == delivered
        )


async def test_unconfirmed_is_delivered_and_other_codes_fail_without_fallback(
    rig: Rig, kit: Kit, store: Store
) -> None:
    people = await kit.seed(10)
    codes = {people.ids[0]: UNCONFIRMED, people.ids[1]: 4004, people.ids[2]: INACTIVE}
    rig.dealer.code = lambda sid, attempt: codes.get(sid, 1000)
    alert_id = await kit.create_alert(people.audience)
    await _with_fallback(store, alert_id, codes=(NOT_KAKAO,))
    [task] = await rig.plan(alert_id)

    assert await rig.run(task) == "done"

    assert rig.sms.sends == []  # neither 3005 nor a code outside the alert's fallback
    assert rig.dealer.attempts[people.ids[0]] == 1  # 3005 is never sent again
    row = await rig.alert(alert_id)
    assert (row["delivered"], row["failed"]) == (8, 2)


async def test_an_sms_batch_settled_at_the_dealer_before_a_crash_is_not_sent_again(
    rig: Rig, kit: Kit, store: Store
) -> None:
    people = await kit.seed(5)
    rig.dealer.code = lambda sid, attempt: NOT_KAKAO if sid == people.ids[2] else 1000
    rig.sms.latency = 0.05
    alert_id = await kit.create_alert(people.audience)
    await _with_fallback(store, alert_id)
    [task] = await rig.plan(alert_id)
    # the SMS dealer accepts the fallback batch, and the sender dies before settling it
    rig.sms.before_send = _crash_after_accepting(rig)
    assert await rig.run(task) != "done"
    assert len(rig.sms.accepted) == 1

    rig.sms.before_send = None
    assert await rig.run(task) == "done"
    assert rig.sms.sends == []  # its fate was looked up, not sent a second time
    assert next(iter(rig.sms.accepted.values())).subscriber_ids == [people.ids[2]]
    row = await rig.alert(alert_id)
    assert (row["status"], row["delivered"]) == ("completed", 5)


class SenderKilled(Exception):
    """The sender died between the dealer's acceptance and the settlement."""


def _crash_after_accepting(rig: Rig) -> Callable[[OutgoingBatch], Awaitable[None]]:
    async def accept_then_die(batch: OutgoingBatch) -> None:
        ids = batch.recipients.subscriber_ids
        rig.sms.accepted[batch.batch_id] = BatchResult(batch.batch_id, list(ids), [1000] * len(ids))
        raise SenderKilled(batch.batch_id)

    return accept_then_die


async def test_a_promotional_text_waits_for_the_advertising_hours(
    rig: Rig, kit: Kit, store: Store
) -> None:
    people = await kit.seed(3)
    rig.dealer.code = lambda sid, attempt: INACTIVE if sid == people.ids[0] else 1000
    clock = WallClock()
    clock.now = datetime(2026, 12, 7, 13, 30, tzinfo=UTC)  # 22:30 in Korea
    rig.deps.wall_clock = clock
    alert_id = await kit.create_alert(people.audience, category="promotional")
    await _with_fallback(store, alert_id)
    [task] = await rig.plan(alert_id)

    assert await rig.run(task) == "held"
    assert rig.sms.sends == []
    held = await store.pool.fetchrow(
        "SELECT not_before FROM batches WHERE alert_id = $1 AND channel = 'sms'", alert_id
    )
    assert held["not_before"] == datetime(2026, 12, 7, 23, 0, tzinfo=UTC)  # 08:00 KST

    clock.now = datetime(2026, 12, 7, 23, 0, 1, tzinfo=UTC)
    assert await rig.run(task) == "done"
    assert rig.sms.recipients() == [people.ids[0]]


async def test_kakaotalk_unreachable_beyond_the_set_time_falls_back_for_the_rest(
    rig: Rig, kit: Kit, store: Store
) -> None:
    people = await kit.seed(30)
    rig.deps.options = replace(OPTIONS, batch_size=10, fallback_unreachable_seconds=0.05)

    async def down(batch: OutgoingBatch) -> None:
        raise RetryableProviderError("503 from KakaoTalk")

    rig.dealer.before_send = down
    alert_id = await kit.create_alert(people.audience)
    await _with_fallback(store, alert_id)
    [task] = await rig.plan(alert_id)

    assert await rig.run(task) == "done"

    assert sorted(rig.sms.recipients()) == people.ids  # everyone, once, by SMS
    row = await rig.alert(alert_id)
    assert (row["status"], row["delivered"], row["failed"]) == ("completed", 30, 0)
    codes = await store.pool.fetch(
        "SELECT DISTINCT t.code FROM batches, allim_sent(sent_ids, result_codes) AS t"
        " WHERE alert_id = $1 AND channel = 'kakao'",
        alert_id,
    )
    assert [r["code"] for r in codes] == [UNREACHABLE]


async def test_without_the_setting_kakaotalk_is_waited_for(
    rig: Rig, kit: Kit, store: Store
) -> None:
    people = await kit.seed(5)
    failures = iter(range(3))

    async def down_three_times(batch: OutgoingBatch) -> None:
        if next(failures, None) is not None:
            raise RetryableProviderError("503 from KakaoTalk")

    rig.dealer.before_send = down_three_times
    alert_id = await kit.create_alert(people.audience)
    await _with_fallback(store, alert_id)
    [task] = await rig.plan(alert_id)
    assert await rig.run(task) == "done"
    assert rig.sms.sends == []
    assert sorted(rig.dealer.recipients()) == people.ids
