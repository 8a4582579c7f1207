"""End to end: `allim broadcaster` child processes, the real sandbox, Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from broadcaster.store import Store

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
