"""The planner's consume loop under its supervisor, on the real Kafka and PostgreSQL: every
request planned and committed after it; when planning fails, the records not yet planned
are fetched again when the supervisor runs the loop again, not skipped."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from tests.broadcaster.kits import Kit
from tests.waiting import eventually

from broadcaster.metrics import BroadcasterMetrics
from broadcaster.planner import Planner
from broadcaster.planning_loop import consume_requests
from broadcaster.publishing import Publisher
from broadcaster.store import Store
from common import topics
from common.kafka import create_consumer
from common.supervision import supervise

pytestmark = pytest.mark.integration


@pytest.fixture
async def requests(kafka_topics: str) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer in a group of its own, assigned nothing yet."""
    consumer = create_consumer(kafka_topics, f"planner-{uuid.uuid4().hex[:8]}", "allim-test")
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


@asynccontextmanager
async def refused_once(
    store: Store, alert_id: uuid.UUID
) -> AsyncIterator[Callable[[], Awaitable[int]]]:
    """PostgreSQL refuses the first plan of the alert (its update to `sending`) as a database
    in trouble would; yields how many plans were tried. A sequence counts the tries: it is
    not rolled back with the refused transaction."""
    name = f"refuse_{alert_id.hex}"
    await store.pool.execute(
        f"CREATE SEQUENCE {name};"
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" IF nextval('{name}') = 1 THEN RAISE EXCEPTION 'plan of {alert_id} refused'; END IF;"
        " RETURN NEW; END $$;"
        f"CREATE TRIGGER {name} BEFORE UPDATE ON alerts FOR EACH ROW"
        f" WHEN (NEW.id = '{alert_id}' AND NEW.status = 'sending') EXECUTE FUNCTION {name}()"
    )

    async def tries() -> int:
        count: int = await store.pool.fetchval(
            f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {name}"
        )
        return count

    try:
        yield tries
    finally:
        await store.pool.execute(
            f"DROP TRIGGER {name} ON alerts; DROP FUNCTION {name}(); DROP SEQUENCE {name}"
        )


async def test_requests_are_planned_again_after_a_failure_and_committed_after_planning(
    kit: Kit,
    store: Store,
    producer: AIOKafkaProducer,
    requests: AIOKafkaConsumer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    people = await kit.seed(10)
    alerts = [await kit.create_alert(people.audience) for _ in range(4)]
    # two partitions, two requests each, the first of each refused once: whichever partition
    # is planned first, the other's requests are in the same fetch when planning fails
    partitions = topics.partitions(topics.ALERTS_REQUESTED)
    ends = await requests.end_offsets(partitions)  # earlier tests' requests stay behind
    sent: dict[uuid.UUID, TopicPartition] = {}
    offsets: dict[uuid.UUID, int] = {}
    for n, alert_id in enumerate(alerts):
        metadata = await producer.send_and_wait(
            topics.ALERTS_REQUESTED,
            value=kit.requested(alert_id, people.audience, "public").model_dump_json().encode(),
            key=str(alert_id).encode(),
            partition=n % 2,
        )
        sent[alert_id] = TopicPartition(topics.ALERTS_REQUESTED, metadata.partition)
        offsets[alert_id] = metadata.offset
    # assigned only now: the first fetch holds both partitions' requests
    requests.assign(partitions)
    for partition in partitions:
        requests.seek(partition, ends[partition])
    planner = Planner(store, Publisher(producer), BroadcasterMetrics(), shard_size=500)
    stopping = asyncio.Event()

    async with (
        refused_once(store, alerts[0]) as tries_first,
        refused_once(store, alerts[1]) as tries_second,
    ):
        supervising = asyncio.create_task(
            supervise(
                {"planner": lambda: consume_requests(planner, requests, stopping)},
                stopping,
                backoff=lambda attempt: 0.0,
            )
        )
        try:

            async def all_sending() -> bool:
                rows = await store.pool.fetch(
                    "SELECT status FROM alerts WHERE id = ANY($1::uuid[])", alerts
                )
                return [r["status"] for r in rows] == ["sending"] * len(alerts)

            await eventually(all_sending, 60, what="every alert planned")
        finally:
            stopping.set()
            status = await asyncio.wait_for(supervising, 30)

        assert status == 0
        # each refused once, then planned: tried exactly twice, not skipped, not looped
        assert (await tries_first(), await tries_second()) == (2, 2)
    assert caplog.text.count("planner failed (attempt") == 2
    for alert_id in alerts:
        committed = await requests.committed(sent[alert_id])
        assert committed is not None and committed > offsets[alert_id]
    targeted = await store.pool.fetch(
        "SELECT targeted FROM alerts WHERE id = ANY($1::uuid[])", alerts
    )
    assert [r["targeted"] for r in targeted] == [10] * len(alerts)
