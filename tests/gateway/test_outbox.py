"""The outbox relay against the real broker: Kafka down at POST time, several relays at once.

These tests use a database of their own, so the session gateway's relay cannot publish
the rows they expect to stay unsent.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.gateway.conftest import seed_subscribers
from tests.waiting import eventually

from cli.databases import scratch_database
from common.db import create_engine, session_factory
from common.kafka import create_producer
from common.messages import AlertControl
from common.models import OutboxEntry
from common.readback import read_back
from common.topics import ALERTS_CONTROL, ALERTS_REQUESTED
from gateway.config import GatewaySettings
from gateway.main import create_app
from gateway.metrics import GatewayMetrics
from gateway.outbox import OutboxRelay
from gateway.state import KafkaLink

pytestmark = pytest.mark.integration

DEAD_BOOTSTRAP = "127.0.0.1:9"  # the discard port: nothing speaks Kafka there


@pytest.fixture(scope="module")
async def own_database(database_url: str) -> AsyncIterator[str]:
    """A second migrated database beside the session's, dropped after the module."""
    async with scratch_database(database_url, "allim_outbox") as url:
        yield url


@pytest.fixture(scope="module")
async def own_engine(own_database: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the module's database."""
    engine = create_engine(own_database, pool_size=5)
    yield engine
    await engine.dispose()


async def _unsent(engine: AsyncEngine) -> int:
    async with session_factory(engine)() as session:
        query = select(func.count()).select_from(OutboxEntry).where(OutboxEntry.sent_at.is_(None))
        return int(await session.scalar(query) or 0)


def _gauge(text: str, name: str) -> float | None:
    """The value of the unlabelled sample `name` in a /metrics text, None when it has none."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return float(sample.value)
    return None


async def _drain(relays: list[OutboxRelay]) -> None:
    """Let the relays publish side by side until none of them finds a row it may claim."""
    while any(await asyncio.gather(*(relay.publish_once() for relay in relays))):
        pass


async def _wait_until_unsent(engine: AsyncEngine, left: int = 0) -> None:
    async def drained() -> bool:
        return await _unsent(engine) <= left

    await eventually(drained, what=f"at most {left} outbox rows unsent")


async def test_post_succeeds_while_kafka_is_down_and_is_published_when_it_is_back(
    gateway_settings: GatewaySettings,
    own_database: str,
    own_engine: AsyncEngine,
    api_keys: dict[str, str],
    alert_json: Callable[..., dict[str, Any]],
    kafka_topics: str,
    engine: AsyncEngine,
) -> None:
    from gateway.auth import enrol

    async with session_factory(own_engine)() as session, session.begin():
        _, key = await enrol(session, "outage operator", "operator")
    await seed_subscribers(own_engine)
    headers = {"X-API-Key": key}
    down = create_app(
        gateway_settings.model_copy(
            update={"database_url": own_database, "kafka_bootstrap": DEAD_BOOTSTRAP}
        )
    )
    async with (
        down.router.lifespan_context(down),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=down), base_url="http://down") as http,
    ):
        response = await http.post("/v1/alerts", json=alert_json(), headers=headers)
        assert response.status_code == 202, response.text
        alert_id = response.json()["id"]
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["down"] == ["kafka"]

        # the gauges are refreshed once a second
        async def gauged() -> bool:
            metrics = (await http.get("/metrics")).text
            return _gauge(metrics, "allim_gateway_outbox_unsent") == 1.0

        await eventually(gauged, within=10, what="allim_gateway_outbox_unsent at 1")
        assert await _unsent(own_engine) == 1

    # Kafka is back: a gateway that reaches it publishes what the outbox holds
    up = create_app(gateway_settings.model_copy(update={"database_url": own_database}))
    async with up.router.lifespan_context(up):
        await _wait_until_unsent(own_engine)
    records = await read_back(kafka_topics, ALERTS_REQUESTED, {alert_id})
    assert len(records) == 1


async def test_relays_in_several_processes_publish_each_row_once(
    own_database: str, own_engine: AsyncEngine, kafka_topics: str
) -> None:
    keys = [str(uuid.uuid4()) for _ in range(150)]
    async with session_factory(own_engine)() as session, session.begin():
        # pause then resume for each alert, interleaved with the other alerts' rows
        for action in ("pause", "resume"):
            for key in keys:
                control = AlertControl(
                    alert_id=uuid.UUID(key), action=action, requested_at=datetime.now(UTC)
                )
                session.add(
                    OutboxEntry(
                        topic=ALERTS_CONTROL, key=key, payload=control.model_dump(mode="json")
                    )
                )
            await session.flush()

    relays: list[tuple[OutboxRelay, KafkaLink, AsyncEngine]] = []
    for n in range(3):
        relay_engine = create_engine(own_database, pool_size=2)
        link = KafkaLink(create_producer(kafka_topics, f"relay-test-{n}"))
        await link.producer.start()
        link.ready.set()
        relay = OutboxRelay(session_factory(relay_engine), link, GatewayMetrics(), batch_size=25)
        relays.append((relay, link, relay_engine))
    slow = keys[:10]
    try:
        # a relay that claimed the first alerts' pause rows and has not published them yet
        async with session_factory(own_engine)() as holder, holder.begin():
            await holder.execute(
                select(OutboxEntry.id)
                .where(OutboxEntry.key.in_(slow), OutboxEntry.sent_at.is_(None))
                .order_by(OutboxEntry.id)
                .limit(len(slow))
                .with_for_update()
            )
            await _drain([relay for relay, _, _ in relays])
            # the other relays skipped the claimed rows, and held back their alerts' resumes
            assert await _unsent(own_engine) == 2 * len(slow)
        await _drain([relay for relay, _, _ in relays])
        assert await _unsent(own_engine) == 0
    finally:
        for _, link, relay_engine in relays:
            await link.producer.stop()
            await relay_engine.dispose()

    records = await read_back(kafka_topics, ALERTS_CONTROL, set(keys))
    published = [AlertControl.model_validate_json(r.value) for r in records if r.value]
    assert len(published) == 2 * len(keys)
    actions: dict[str, list[str]] = {}
    for control in published:
        actions.setdefault(str(control.alert_id), []).append(control.action)
    # each row exactly once, and each alert's rows in the order they were written
    assert actions == {key: ["pause", "resume"] for key in keys}


async def test_purge_deletes_only_rows_sent_before_the_retention(
    own_engine: AsyncEngine, kafka_topics: str
) -> None:
    now = datetime.now(UTC)
    keys = {"old": str(uuid.uuid4()), "recent": str(uuid.uuid4()), "unsent": str(uuid.uuid4())}
    sent_at = {"old": now - timedelta(hours=48), "recent": now - timedelta(hours=1), "unsent": None}
    async with session_factory(own_engine)() as session, session.begin():
        for name, key in keys.items():
            session.add(
                OutboxEntry(topic=ALERTS_CONTROL, key=key, payload={}, sent_at=sent_at[name])
            )
    link = KafkaLink(create_producer(kafka_topics, "purge-test"))
    relay = OutboxRelay(session_factory(own_engine), link, GatewayMetrics(), retention_hours=24)
    try:
        assert await relay.purge() >= 1
    finally:
        await link.producer.stop()
    async with session_factory(own_engine)() as session:
        left = set(
            (
                await session.scalars(
                    select(OutboxEntry.key).where(OutboxEntry.key.in_(keys.values()))
                )
            ).all()
        )
    assert left == {keys["recent"], keys["unsent"]}
    # clean up the unsent row, so it does not wait for a relay in later tests
    async with session_factory(own_engine)() as session, session.begin():
        await session.execute(delete(OutboxEntry).where(OutboxEntry.key == keys["unsent"]))
