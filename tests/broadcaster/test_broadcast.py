"""End to end: `allim broadcaster` child processes, the real sandbox, Kafka and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from broadcaster.store import Store

pytestmark = [pytest.mark.integration, pytest.mark.slow]


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
