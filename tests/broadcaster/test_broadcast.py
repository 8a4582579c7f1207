"""End to end: `allim broadcaster` child processes, the real sandbox, Kafka and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from tests.broadcaster.children import SANDBOX_SECRET, Sandbox, Spawn
from tests.broadcaster.kits import Kit
from tests.waiting import eventually

from broadcaster.store import Store
from cli.processes import Service
from common import topics
from common.messages import AlertControl
from common.readback import read_back

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def _accepted(sandbox: Sandbox, alert_id: uuid.UUID, count: float, within: float) -> None:
    """Wait until the sandbox has taken `count` sends of the alert (duplicates counted)."""
    await eventually(
        lambda: sandbox.ledger(alert_id)["acceptances"] >= count,
        within,
        what=f"{count} acceptances of {alert_id}",
    )


async def _samples(service: Service) -> list[Sample]:
    """The metric samples `service` serves now (samples, not names: a family's HELP line
    names it even when it has no sample)."""
    assert service.ready_url is not None
    async with httpx.AsyncClient() as client:
        text = (await client.get(service.ready_url, timeout=5)).text
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def _total(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include `labels`."""
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


async def test_a_broadcast_reaches_every_subscriber_once(
    kit: Kit, store: Store, sandbox: Sandbox, spawn: Spawn
) -> None:
    people = await kit.seed(2_000)
    alert_id = await kit.create_alert(people.audience)
    service = spawn("all")
    service.start()
    service.wait_ready()
    await kit.request(alert_id, people.audience, "public")

    row = await kit.wait_for_status(alert_id, {"completed", "failed"}, within=60)

    assert row["status"] == "completed"
    assert (row["targeted"], row["delivered"], row["failed"]) == (2_000, 2_000, 0)
    ledger = sandbox.ledger(alert_id)
    assert (ledger["accepted"], ledger["duplicates"]) == (2_000, 0)
    assert sorted(sandbox.accepted_numbers(alert_id)) == sorted(people.numbers)
    shards = await store.pool.fetch(
        "SELECT status, sent, delivered FROM shards WHERE alert_id = $1", alert_id
    )
    assert len(shards) == 4
    assert {s["status"] for s in shards} == {"done"}
    assert sum(s["delivered"] for s in shards) == 2_000
    assert service.stop() == 0


@pytest.fixture
def slow_sandbox(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The sandbox answering each send after 250 ms, back to instant afterwards."""
    sandbox.configure(latency_ms=250)
    yield sandbox
    sandbox.configure(latency_ms=0)


async def test_a_sender_killed_again_and_again_still_sends_everyone_exactly_once(
    kit: Kit, store: Store, slow_sandbox: Sandbox, spawn: Spawn
) -> None:
    people = await kit.seed(3_000)
    alert_id = await kit.create_alert(people.audience)
    narrow = {"ALLIM_BROADCASTER_BATCH_SIZE": "50", "ALLIM_BROADCASTER_MAX_IN_FLIGHT": "3"}
    planner = spawn("planner", "planner")
    planner.start()
    planner.wait_ready()
    await kit.request(alert_id, people.audience, "public")

    kills = 0
    for share in (0.15, 0.4, 0.65):
        sender = spawn("sender", f"sender-{kills}", **narrow)
        sender.start()
        sender.wait_ready()
        await _accepted(slow_sandbox, alert_id, share * 3_000, within=60)
        sender.kill()
        kills += 1
    last = spawn("sender", "sender-last", **narrow)
    last.start()
    last.wait_ready()
    row = await kit.wait_for_status(alert_id, {"completed", "failed"}, within=120)

    assert kills == 3
    assert row["status"] == "completed"
    assert (row["targeted"], row["delivered"], row["failed"]) == (3_000, 3_000, 0)
    ledger = slow_sandbox.ledger(alert_id)
    assert ledger["duplicates"] == 0, ledger["duplicate_recipients"]
    assert ledger["accepted"] == row["targeted"]
    active = await store.pool.fetch(
        "SELECT recipient_no FROM subscribers WHERE district = $1 AND status = 'active'",
        people.district,
    )
    assert sorted(slow_sandbox.accepted_numbers(alert_id)) == sorted(r[0] for r in active)
    unsettled = await store.pool.fetchval(
        "SELECT count(*) FROM batches WHERE alert_id = $1 AND status <> 'done'", alert_id
    )
    assert unsettled == 0
    assert last.stop() == 0


async def test_an_emergency_overtakes_a_running_broadcast(
    kit: Kit, slow_sandbox: Sandbox, spawn: Spawn
) -> None:
    crowd = await kit.seed(3_000)
    few = await kit.seed(200)
    normal_id = await kit.create_alert(crowd.audience)
    urgent_id = await kit.create_alert(few.audience, category="emergency")
    service = spawn("all", ALLIM_BROADCASTER_BATCH_SIZE="50", ALLIM_BROADCASTER_MAX_IN_FLIGHT="2")
    service.start()
    service.wait_ready()
    await kit.request(normal_id, crowd.audience, "public")
    await _accepted(slow_sandbox, normal_id, 300, within=60)

    await kit.request(urgent_id, few.audience, "emergency")
    await _accepted(slow_sandbox, urgent_id, 1, within=30)
    normal_at_start = slow_sandbox.ledger(normal_id)["acceptances"]
    await _accepted(slow_sandbox, urgent_id, 200, within=30)
    normal_at_end = slow_sandbox.ledger(normal_id)["acceptances"]

    # only batches already in flight when the emergency came may land meanwhile
    assert normal_at_end - normal_at_start <= 2 * 50
    assert normal_at_end < 3_000
    done = await kit.wait_for_status(normal_id, {"completed"}, within=120)
    assert done["delivered"] == 3_000
    assert slow_sandbox.ledger(normal_id)["duplicates"] == 0


async def test_a_cancel_on_the_control_topic_alone_stops_sending(
    kit: Kit, store: Store, slow_sandbox: Sandbox, spawn: Spawn
) -> None:
    people = await kit.seed(3_000)
    alert_id = await kit.create_alert(people.audience)
    # the database poll an hour away: only the control record can stop this broadcast
    service = spawn(
        "all", ALLIM_BROADCASTER_BATCH_SIZE="50", ALLIM_BROADCASTER_CONTROL_POLL_SECONDS="3600"
    )
    service.start()
    service.wait_ready()
    await kit.request(alert_id, people.audience, "public")
    await _accepted(slow_sandbox, alert_id, 200, within=60)

    command = AlertControl(alert_id=alert_id, action="cancel", requested_at=datetime.now(UTC))
    await kit.producer.send_and_wait(
        topics.ALERTS_CONTROL, command.model_dump_json().encode(), key=str(alert_id).encode()
    )

    async def a_shard_cancelled() -> bool:
        return "cancelled" in await _shard_statuses(store, alert_id)

    await eventually(a_shard_cancelled, 30, what="a shard cancelled")

    assert slow_sandbox.ledger(alert_id)["acceptances"] < 3_000
    status = await store.pool.fetchval("SELECT status FROM alerts WHERE id = $1", alert_id)
    assert status == "sending"  # nobody wrote the cancel into the alerts table


async def test_shards_held_for_quiet_hours_or_cancelled_do_not_count_as_lag(
    kit: Kit, store: Store, sandbox: Sandbox, spawn: Spawn
) -> None:
    people = await kit.seed(1_200)  # three shards
    alert_id = await kit.create_alert(people.audience, category="promotional")
    seoul = datetime.now(ZoneInfo("Asia/Seoul"))
    service = spawn(
        "all",
        # quiet hours from an hour ago to an hour from now, whenever the test runs
        ALLIM_BROADCASTER_QUIET_START=(seoul - timedelta(hours=1)).strftime("%H:%M"),
        ALLIM_BROADCASTER_QUIET_END=(seoul + timedelta(hours=1)).strftime("%H:%M"),
    )
    service.start()
    service.wait_ready()
    await kit.request(alert_id, people.audience, "promotional")

    async def gauges() -> tuple[float, float, float]:
        samples = await _samples(service)
        return (
            _total(samples, "allim_broadcaster_shard_lag", priority="normal"),
            _total(samples, "allim_broadcaster_shards_held"),
            _total(samples, "allim_broadcaster_shards_total", outcome="cancelled"),
        )

    # the group reads the shard topics from their start: shards other tests left unfinished
    # come too, and a promotional one among them is held as well
    async def held() -> bool:
        lag, held, _ = await gauges()
        taken_up = await _shard_statuses(store, alert_id) == {"sending"}
        return lag == 0 and held >= 3 and taken_up  # taken up: the stall check skips them

    await eventually(held, 60, what="three shards held and none lagging")
    _, held_before, cancelled_before = await gauges()
    assert sandbox.ledger(alert_id)["acceptances"] == 0

    # the gateway's cancel: the row, then the control record
    await store.pool.execute("UPDATE alerts SET status = 'cancelled' WHERE id = $1", alert_id)
    command = AlertControl(alert_id=alert_id, action="cancel", requested_at=datetime.now(UTC))
    await kit.producer.send_and_wait(
        topics.ALERTS_CONTROL, command.model_dump_json().encode(), key=str(alert_id).encode()
    )

    async def released() -> bool:
        return await _shard_statuses(store, alert_id) == {"cancelled"}

    # long before quiet hours end, the held shards finish as cancelled
    await eventually(released, 30, what="the held shards finished as cancelled")

    async def counted() -> bool:
        lag, held, cancelled = await gauges()
        return (lag, held) == (0, held_before - 3) and cancelled >= cancelled_before + 3

    await eventually(counted, 10, what="the cancelled shards no longer held")


async def _shard_statuses(store: Store, alert_id: uuid.UUID) -> set[str]:
    rows = await store.pool.fetch("SELECT status FROM shards WHERE alert_id = $1", alert_id)
    return {r[0] for r in rows}


async def test_sigterm_settles_the_batches_in_flight_and_exits_cleanly(
    kit: Kit, store: Store, slow_sandbox: Sandbox, spawn: Spawn
) -> None:
    people = await kit.seed(2_000)
    alert_id = await kit.create_alert(people.audience)
    narrow = {"ALLIM_BROADCASTER_BATCH_SIZE": "50"}
    first = spawn("all", "first", **narrow)
    first.start()
    first.wait_ready()
    await kit.request(alert_id, people.audience, "public")
    await _accepted(slow_sandbox, alert_id, 400, within=60)

    # exits by itself within the grace period (a SIGKILL after it would not be status 0),
    # every batch in flight settled: what the provider took is what the batches recorded
    assert first.stop() == 0
    unsettled = await store.pool.fetchval(
        "SELECT count(*) FROM batches WHERE alert_id = $1 AND status <> 'done'", alert_id
    )
    assert unsettled == 0
    recorded = await store.pool.fetchval(
        "SELECT coalesce(sum(delivered), 0) FROM batches WHERE alert_id = $1", alert_id
    )
    assert recorded == slow_sandbox.ledger(alert_id)["accepted"]
    row = await store.pool.fetchrow("SELECT status, delivered FROM alerts WHERE id = $1", alert_id)
    assert row["status"] == "sending" and row["delivered"] < 2_000

    second = spawn("all", "second", **narrow)
    second.start()
    second.wait_ready()
    done = await kit.wait_for_status(alert_id, {"completed"}, within=120)
    assert done["delivered"] == 2_000
    ledger = slow_sandbox.ledger(alert_id)
    assert (ledger["accepted"], ledger["duplicates"]) == (2_000, 0)


async def test_a_poison_shard_task_is_dead_lettered_and_the_group_moves_on(
    kit: Kit, sandbox: Sandbox, spawn: Spawn, kafka_topics: str
) -> None:
    people = await kit.seed(100)
    alert_id = await kit.create_alert(people.audience)
    service = spawn("all")
    service.start()
    service.wait_ready()
    marker = f"poison-{uuid.uuid4()}".encode()
    await kit.producer.send_and_wait(topics.BROADCAST_SHARDS, b"{not json", key=marker)
    await kit.request(alert_id, people.audience, "public")

    done = await kit.wait_for_status(alert_id, {"completed"}, within=60)

    assert done["delivered"] == 100
    found = await read_back(kafka_topics, topics.DEAD_LETTER, {marker})
    assert found, "the poison shard task is not on the dead-letter topic"
    headers = dict(found[0].headers)
    assert headers["dlq_topic"] == topics.BROADCAST_SHARDS.encode()
    assert b"invalid ShardTask" in headers["dlq_reason"]

    # the counter follows the dead letter's publication: wait for it, then read
    async def dead_letter_counted() -> bool:
        samples = await _samples(service)
        dead = _total(
            samples, "allim_broadcaster_dead_letters_total", topic=topics.BROADCAST_SHARDS
        )
        return dead >= 1

    await eventually(dead_letter_counted, 30, what="the dead letter counted")
    samples = await _samples(service)
    delivered = "allim_broadcaster_recipients_delivered_total"
    assert _total(samples, delivered, category="public") >= 100


async def test_two_senders_share_the_shards_and_a_rebalance_loses_nothing(
    kit: Kit, slow_sandbox: Sandbox, spawn: Spawn
) -> None:
    people = await kit.seed(3_000)
    alert_id = await kit.create_alert(people.audience)
    narrow = {
        "ALLIM_BROADCASTER_BATCH_SIZE": "50",
        "ALLIM_BROADCASTER_SHARD_SIZE": "250",
        "ALLIM_BROADCASTER_MAX_IN_FLIGHT": "2",
    }
    planner = spawn("planner", "planner", **narrow)
    first = spawn("sender", "sender-a", **narrow)
    for service in (planner, first):
        service.start()
        service.wait_ready()
    await kit.request(alert_id, people.audience, "public")
    await _accepted(slow_sandbox, alert_id, 300, within=60)

    # joining mid-broadcast revokes partitions from the first sender while it sends; the
    # provider slows down meanwhile, so the first cannot finish alone on a fast machine
    # before the second has joined on a loaded one
    slow_sandbox.configure(latency_ms=1_000)
    second = spawn("sender", "sender-b", **narrow)
    second.start()
    second.wait_ready()
    done = await kit.wait_for_status(alert_id, {"completed"}, within=120)

    assert done["delivered"] == 3_000
    ledger = slow_sandbox.ledger(alert_id)
    assert (ledger["accepted"], ledger["duplicates"]) == (3_000, 0)
    for service in (first, second):
        samples = await _samples(service)
        sent = _total(samples, "allim_broadcaster_recipients_sent_total")
        assert sent > 0, f"{service.name} sent nothing"


@pytest.fixture
def faulty_sandbox(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The sandbox failing in every way the contract allows; well-behaved again afterwards."""
    sandbox.configure(
        messages_per_second=3_000,
        burst_seconds=0.2,
        server_error_share=0.1,
        reset_share=0.05,
        timeout_share=0.05,
        hang_seconds=2.0,
        fault_after_accept_share=0.5,
        inactive_share=0.02,
        non_kakao_share=0.01,
        temporary_failure_share=0.05,
    )
    yield sandbox
    sandbox.configure(
        messages_per_second=0,
        server_error_share=0,
        reset_share=0,
        timeout_share=0,
        inactive_share=0,
        non_kakao_share=0,
        temporary_failure_share=0,
    )


async def test_faults_throttling_and_failures_still_end_in_exactly_once(
    kit: Kit, store: Store, faulty_sandbox: Sandbox, spawn: Spawn
) -> None:
    people = await kit.seed(3_000)
    alert_id = await kit.create_alert(people.audience)
    service = spawn(
        "all",
        ALLIM_BROADCASTER_BATCH_SIZE="100",
        ALLIM_BROADCASTER_HTTP_TIMEOUT_SECONDS="1",
        ALLIM_BROADCASTER_RETRY_CAP_SECONDS="1",
        ALLIM_BROADCASTER_RATE_MESSAGES_PER_SECOND="4000",
    )
    service.start()
    service.wait_ready()
    await kit.request(alert_id, people.audience, "public")

    row = await kit.wait_for_status(alert_id, {"completed", "failed"}, within=180)

    assert row["status"] == "completed"
    ledger = faulty_sandbox.ledger(alert_id)
    assert ledger["duplicates"] == 0, ledger["duplicate_recipients"]
    assert ledger["accepted"] == row["delivered"]
    assert row["delivered"] + row["failed"] == row["targeted"] == 3_000
    failures = await store.pool.fetch(
        "SELECT result_code, count(*) FROM delivery_failures WHERE alert_id = $1"
        " GROUP BY result_code",
        alert_id,
    )
    assert {f[0] for f in failures} <= {3018, 3019}
    assert sum(f[1] for f in failures) == row["failed"] > 0
    samples = await _samples(service)
    assert _total(samples, "allim_broadcaster_retries_total", cause="recipient") >= 1
    assert _total(samples, "allim_broadcaster_retries_total", cause="transient") >= 1


async def test_those_kakaotalk_refuses_get_one_sms_through_the_real_sandbox(
    kit: Kit, store: Store, sandbox: Sandbox, spawn: Spawn
) -> None:
    people = await kit.seed(1_500)
    alert_id = await kit.create_alert(people.audience)
    await store.pool.execute(
        "UPDATE alerts SET fallback_codes = '{3018,3019,3020}', sms_kind = 'LMS',"
        " sms_subject = '태풍 대비 안내', sms_text = $2 WHERE id = $1",
        alert_id,
        "강풍과 호우에 대비하세요.\n#{link}",
    )
    sandbox.configure(inactive_share=0.05, non_kakao_share=0.02)
    try:
        service = spawn(
            "all",
            ALLIM_BROADCASTER_SMS_BASE_URL=sandbox.url,
            ALLIM_BROADCASTER_SMS_APPKEY="allim-sandbox",
            ALLIM_BROADCASTER_SMS_SECRET=SANDBOX_SECRET,
            ALLIM_BROADCASTER_SMS_SEND_NO="15880000",
        )
        service.start()
        service.wait_ready()
        await kit.request(alert_id, people.audience, "public")
        row = await kit.wait_for_status(alert_id, {"completed", "failed"}, within=90)
    finally:
        sandbox.configure(inactive_share=0.0, non_kakao_share=0.0)

    kakao = set(sandbox.accepted_numbers(alert_id))
    sms = sandbox.sms_numbers(alert_id)
    refused = set(people.numbers) - kakao
    assert 30 < len(refused) < 200  # about 7% of 1,500
    assert sorted(sms) == sorted(refused)  # each refused recipient once by SMS, nobody else
    assert sandbox.sms_ledger(alert_id)["duplicates"] == 0
    assert (row["status"], row["delivered"], row["failed"]) == ("completed", 1_500, 0)
