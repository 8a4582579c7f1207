"""End to end: `allim broadcaster` child processes, the real sandbox, Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from broadcaster.store import Store
from common import topics
from common.messages import AlertControl

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def _until(condition: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {within} s")
        await asyncio.sleep(0.05)


async def test_a_broadcast_reaches_every_subscriber_once(
    kit: Any, store: Store, sandbox: Any, spawn: Any
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
def slow_sandbox(sandbox: Any) -> Any:
    """The sandbox answering each send after 250 ms, back to instant afterwards."""
    sandbox.configure(latency_ms=250)
    yield sandbox
    sandbox.configure(latency_ms=0)


async def test_a_sender_killed_again_and_again_still_sends_everyone_exactly_once(
    kit: Any, store: Store, slow_sandbox: Any, spawn: Any
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
        target = share * 3_000
        await _until(lambda t=target: slow_sandbox.ledger(alert_id)["acceptances"] >= t, 60)
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
    kit: Any, slow_sandbox: Any, spawn: Any
) -> None:
    crowd = await kit.seed(3_000)
    few = await kit.seed(200)
    normal_id = await kit.create_alert(crowd.audience)
    urgent_id = await kit.create_alert(few.audience, category="emergency")
    service = spawn("all", ALLIM_BROADCASTER_BATCH_SIZE="50", ALLIM_BROADCASTER_MAX_IN_FLIGHT="2")
    service.start()
    service.wait_ready()
    await kit.request(normal_id, crowd.audience, "public")
    await _until(lambda: slow_sandbox.ledger(normal_id)["acceptances"] >= 300, 60)

    await kit.request(urgent_id, few.audience, "emergency")
    await _until(lambda: slow_sandbox.ledger(urgent_id)["acceptances"] > 0, 30)
    normal_at_start = slow_sandbox.ledger(normal_id)["acceptances"]
    await _until(lambda: slow_sandbox.ledger(urgent_id)["acceptances"] >= 200, 30)
    normal_at_end = slow_sandbox.ledger(normal_id)["acceptances"]

    # only batches already in flight when the emergency came may land meanwhile
    assert normal_at_end - normal_at_start <= 2 * 50
    assert normal_at_end < 3_000
    done = await kit.wait_for_status(normal_id, {"completed"}, within=120)
    assert done["delivered"] == 3_000
    assert slow_sandbox.ledger(normal_id)["duplicates"] == 0


async def test_a_cancel_on_the_control_topic_alone_stops_sending(
    kit: Any, store: Store, slow_sandbox: Any, spawn: Any
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
    await _until(lambda: slow_sandbox.ledger(alert_id)["acceptances"] >= 200, 60)

    command = AlertControl(alert_id=alert_id, action="cancel", requested_at=datetime.now(UTC))
    await kit.producer.send_and_wait(
        topics.ALERTS_CONTROL, command.model_dump_json().encode(), key=str(alert_id).encode()
    )
    deadline = time.monotonic() + 30
    while "cancelled" not in await _shard_statuses(store, alert_id):
        assert time.monotonic() < deadline, "no shard was cancelled in 30 s"
        await asyncio.sleep(0.05)

    assert slow_sandbox.ledger(alert_id)["acceptances"] < 3_000
    status = await store.pool.fetchval("SELECT status FROM alerts WHERE id = $1", alert_id)
    assert status == "sending"  # nobody wrote the cancel into the alerts table


async def _shard_statuses(store: Store, alert_id: Any) -> set[str]:
    rows = await store.pool.fetch("SELECT status FROM shards WHERE alert_id = $1", alert_id)
    return {r[0] for r in rows}


async def test_sigterm_settles_the_batches_in_flight_and_exits_cleanly(
    kit: Any, store: Store, slow_sandbox: Any, spawn: Any
) -> None:
    people = await kit.seed(2_000)
    alert_id = await kit.create_alert(people.audience)
    narrow = {"ALLIM_BROADCASTER_BATCH_SIZE": "50"}
    first = spawn("all", "first", **narrow)
    first.start()
    first.wait_ready()
    await kit.request(alert_id, people.audience, "public")
    await _until(lambda: slow_sandbox.ledger(alert_id)["acceptances"] >= 400, 60)

    started = time.monotonic()
    assert first.stop() == 0
    assert time.monotonic() - started < 10
    unsettled = await store.pool.fetchval(
        "SELECT count(*) FROM batches WHERE alert_id = $1 AND status <> 'done'", alert_id
    )
    assert unsettled == 0
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
    kit: Any, sandbox: Any, spawn: Any, kafka_topics: str
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
    consumer = AIOKafkaConsumer(
        topics.DEAD_LETTER,
        bootstrap_servers=kafka_topics,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        found = None
        for _ in range(30):
            for records in (await consumer.getmany(timeout_ms=300)).values():
                found = next((r for r in records if r.key == marker), found)
            if found is not None:
                break
    finally:
        await consumer.stop()
    assert found is not None
    headers = dict(found.headers)
    assert headers["dlq_topic"] == topics.BROADCAST_SHARDS.encode()
    assert b"invalid ShardTask" in headers["dlq_reason"]
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(service.ready_url, timeout=5)).text
    assert 'allim_broadcaster_recipients_delivered_total{category="public"}' in metrics
    assert "allim_broadcaster_dead_letters_total" in metrics


async def test_two_senders_share_the_shards_and_a_rebalance_loses_nothing(
    kit: Any, slow_sandbox: Any, spawn: Any
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
    await _until(lambda: slow_sandbox.ledger(alert_id)["acceptances"] >= 300, 60)

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
    async with httpx.AsyncClient() as client:
        for service in (first, second):
            text = (await client.get(service.ready_url, timeout=5)).text
            sent = [
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("allim_broadcaster_recipients_sent_total{")
            ]
            assert sum(sent) > 0, f"{service.name} sent nothing"


@pytest.fixture
def faulty_sandbox(sandbox: Any) -> Any:
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
    kit: Any, store: Store, faulty_sandbox: Any, spawn: Any
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
    async with httpx.AsyncClient() as client:
        text = (await client.get(service.ready_url, timeout=5)).text
    retried = [
        line for line in text.splitlines() if line.startswith("allim_broadcaster_retries_total{")
    ]
    assert any('cause="recipient"' in line for line in retried)
    assert any('cause="transient"' in line for line in retried)
