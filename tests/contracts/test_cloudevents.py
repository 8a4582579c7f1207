"""The event contract as another system meets it: after a real broadcast, a cancel, taps and a
dead letter (the broadcaster, the sandbox provider, the gateway and analytics on the real
Kafka and PostgreSQL), every record of those alerts on each topic that carries events is
read with the CloudEvents SDK and validated against docs/asyncapi.yaml."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Collection
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr
from tests.broadcaster.children import TRACKING_SECRET, Sandbox, Spawn
from tests.broadcaster.kits import Kit
from tests.contracts.asyncapi import Contract, Event
from tests.waiting import eventually

from analytics.config import AnalyticsSettings
from analytics.main import run as run_analytics
from broadcaster.store import Store
from cli.processes import free_port
from common import events, topics
from common.db import create_engine, session_factory
from common.events import CloudEvent
from common.kafka import MAX_DEAD_LETTER_REASON
from common.readback import Records, read_back
from common.tokens import TokenSigner
from gateway import audit, intake
from gateway.config import GatewaySettings
from gateway.main import create_app as create_gateway
from sandbox.server import serving

EVENT_TOPICS = (topics.DELIVERIES, topics.ALERT_EVENTS, topics.ENGAGEMENT, topics.ALERTS_STATS)
# every type allim publishes on those topics (the internal ones, requested and control, not)
PUBLISHED_TYPES = {
    events.DELIVERY_BATCH,
    events.ALERT_STARTED,
    events.ALERT_PROGRESS,
    events.ALERT_COMPLETED,
    events.ALERT_CANCELLED,
    events.ALERT_FAILED,
    events.LINK_TAPPED,
    events.ALERT_STATS,
}


@pytest.fixture(scope="module")
def contract() -> Contract:
    """docs/asyncapi.yaml."""
    return Contract.load()


# -- the document against the code -------------------------------------------------------


def test_the_channels_are_the_event_topics_as_they_are_created(contract: Contract) -> None:
    specs = {spec.name: spec for spec in topics.TOPICS}
    channels = contract.document["channels"].values()

    assert {c["address"] for c in channels} == {*EVENT_TOPICS, topics.DEAD_LETTER}
    for channel in channels:
        binding, spec = channel["bindings"]["kafka"], specs[channel["address"]]
        assert (binding["topic"], binding["partitions"]) == (spec.name, spec.partitions)
        documented = {
            name: ",".join(value) if isinstance(value, list) else str(value)
            for name, value in binding.get("topicConfiguration", {}).items()
        }
        assert documented.items() <= spec.configs.items(), spec.name


def test_the_messages_name_every_type_allim_publishes(contract: Contract) -> None:
    named: set[str] = set()
    for topic in EVENT_TOPICS:
        for message in contract.messages(topic):
            ce_type = contract.at(f"{message}/headers/allOf/1/properties/ce_type")
            named.update(ce_type.get("enum", [ce_type.get("const")]))

    assert named == PUBLISHED_TYPES
    reason = contract.at("/components/messages/DeadLetter/headers/properties/dlq_reason")
    assert reason["maxLength"] == MAX_DEAD_LETTER_REASON


class _Record:
    """A record as the broker hands it out, for checks that need no broker."""

    def __init__(self, topic: str, key: bytes | None, event: CloudEvent) -> None:
        self.topic, self.partition, self.offset = topic, 0, 0
        self.key, self.value, self.headers = key, event.value(), tuple(event.headers())


def test_the_check_refuses_what_breaks_the_contract(contract: Contract) -> None:
    alert = uuid.uuid4()
    good = {
        "alert_id": str(alert),
        "subscriber_id": 7,
        "reader_id": "ab",
        "tapped_at": "2026-01-01T00:00:00Z",
    }

    def tap(**changes: Any) -> CloudEvent:
        return CloudEvent(events.LINK_TAPPED, "/allim/gateway", {**good, **changes})

    passed = contract.check_event(_Record(topics.ENGAGEMENT, str(alert).encode(), tap()))
    assert passed.problems == []
    assert passed.event is not None and passed.event.data == good
    for record in (
        _Record(topics.ENGAGEMENT, str(alert).encode(), tap(subscriber_id="seven")),
        _Record(topics.ENGAGEMENT, str(alert).encode(), tap(tapped_at="yesterday")),
        _Record(topics.ENGAGEMENT, str(alert).encode(), tap(undocumented=1)),
        _Record(topics.ENGAGEMENT, b"not-the-alert", tap()),
        _Record(topics.ENGAGEMENT, None, tap()),
        _Record(topics.DELIVERIES, str(alert).encode(), tap()),  # a tap on another channel
        _Record(topics.ENGAGEMENT, str(alert).encode(), CloudEvent("dev.allim.nope", "/x", good)),
    ):
        assert contract.check_event(record).problems, record.value
    unparsable = _Record(topics.ENGAGEMENT, str(alert).encode(), tap())
    unparsable.headers = tuple((k, v) for k, v in unparsable.headers if k != "ce_source")
    assert "CloudEvents SDK refuses it" in contract.check_event(unparsable).problems[0]


# -- the records of a real broadcast -----------------------------------------------------


@pytest.fixture
async def gateway_url(database_url: str, kafka_topics: str) -> AsyncIterator[str]:
    """A gateway on the test database and broker, over real HTTP (for its tracked links)."""
    settings = GatewaySettings(
        environment="test",
        database_url=database_url,
        kafka_bootstrap=kafka_topics,
        tracking_secret=SecretStr(TRACKING_SECRET),
        public_base_url="http://127.0.0.1",
    )
    app = create_gateway(settings)
    async with serving(app) as url:
        await asyncio.wait_for(app.state.gateway.kafka.ready.wait(), 60)
        yield url


@pytest.fixture
async def analytics(database_url: str, kafka_topics: str) -> AsyncIterator[None]:
    """The analytics service in-process, under a consumer group of its own."""
    group = f"contract-{uuid.uuid4().hex[:8]}"
    settings = AnalyticsSettings(
        environment="test",
        database_url=database_url,
        kafka_bootstrap=kafka_topics,
        tracking_secret=TRACKING_SECRET,
        analytics_group_id=group,
        analytics_consumer_name=group,
        analytics_metrics_port=free_port(),
        analytics_snapshot_seconds=0.5,
    )
    stop = asyncio.Event()
    service = asyncio.create_task(run_analytics(settings, stop))
    try:
        yield
    finally:
        stop.set()
        assert await service == 0


async def _cancel_as_the_gateway_does(database_url: str, alert_id: uuid.UUID) -> None:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_factory(engine)() as session:
            await intake.cancel(session, alert_id, actor=audit.Actor(name="contract test"))
    finally:
        await engine.dispose()


async def _read_to_end(bootstrap: str, topic: str, keys: Collection[str]) -> Records:
    """The records of `topic` with one of `keys`, from its start to its end as of now."""
    wanted = {k.encode() for k in keys}
    # no group, so no committed offsets: every partition starts at its beginning
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found: Records = []
    try:
        assigned = topics.partitions(topic)
        consumer.assign(assigned)
        ends = await consumer.end_offsets(assigned)
        async with asyncio.timeout(60):
            while [p for p in assigned if await consumer.position(p) < ends[p]]:
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                for records in batches.values():
                    found.extend(r for r in records if r.key in wanted)
    finally:
        await consumer.stop()
    return found


async def test_every_record_of_a_broadcast_a_cancel_and_taps_keeps_the_contract(
    contract: Contract,
    kit: Kit,
    store: Store,
    sandbox: Sandbox,
    spawn: Spawn,
    gateway_url: str,
    analytics: None,
    kafka_topics: str,
    database_url: str,
) -> None:
    few, crowd = await kit.seed(120), await kit.seed(3_000)
    done_id = await kit.create_alert(few.audience)
    cancelled_id = await kit.create_alert(crowd.audience)
    sender = spawn("all", ALLIM_BROADCASTER_BATCH_SIZE="50", ALLIM_BROADCASTER_MAX_IN_FLIGHT="2")
    sender.start()
    sender.wait_ready()

    # a broadcast to its end, and three taps on its tracked links through the gateway
    await kit.request(done_id, few.audience, "public")
    done = await kit.wait_for_status(done_id, {"completed", "failed"}, within=60)
    assert done["status"] == "completed"
    signer = TokenSigner(TRACKING_SECRET.encode()).signer_for(done_id, int(time.time()) + 3600)
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as http:
        for subscriber in few.ids[:3]:
            tapped = await http.get(f"/r/{signer.sign(subscriber)}")
            assert tapped.status_code == 302, tapped.text

    # a broadcast of six shards cancelled while several of them send
    sandbox.configure(latency_ms=100)
    try:
        await kit.request(cancelled_id, crowd.audience, "public")
        await eventually(
            lambda: sandbox.ledger(cancelled_id)["acceptances"] >= 300, 60, what="sending"
        )
        await _cancel_as_the_gateway_does(database_url, cancelled_id)

        async def every_shard_stopped() -> bool:
            left = await store.pool.fetchval(
                "SELECT count(*) FROM shards WHERE alert_id = $1"
                " AND status NOT IN ('done', 'cancelled')",
                cancelled_id,
            )
            return left == 0

        await eventually(every_shard_stopped, 60, what="every shard stopped")
    finally:
        sandbox.configure(latency_ms=0)
    cancelled = await store.pool.fetchrow("SELECT * FROM alerts WHERE id = $1", cancelled_id)

    # a record the planner cannot read, parked on the dead-letter topic
    poison_key = f"contract-{uuid.uuid4()}"
    await kit.producer.send_and_wait(
        topics.ALERTS_REQUESTED, value=b"{not json", key=poison_key.encode()
    )

    # everything told: the end of the cancel, the taps counted and snapshotted, the poison
    alerts = {str(done_id), str(cancelled_id)}

    def told_the_cancel(found: Records) -> bool:
        return any(dict(r.headers)["ce_type"] == events.ALERT_CANCELLED.encode() for r in found)

    lifecycle = await read_back(
        kafka_topics, topics.ALERT_EVENTS, {str(cancelled_id)}, enough=told_the_cancel, within=30
    )
    assert told_the_cancel(lifecycle)
    await _snapshots_settled(kafka_topics, done_id, cancelled)
    assert await read_back(kafka_topics, topics.DEAD_LETTER, {poison_key}, within=30)
    assert sender.stop() == 0

    problems: list[str] = []
    found: dict[str, list[Event]] = {}
    for topic in EVENT_TOPICS:
        checked = [contract.check_event(r) for r in await _read_to_end(kafka_topics, topic, alerts)]
        problems += [p for c in checked for p in c.problems]
        found[topic] = [c.event for c in checked if c.event is not None]
    dead = await _read_to_end(kafka_topics, topics.DEAD_LETTER, {poison_key})
    problems += [p for record in dead for p in contract.check_dead_letter(record)]

    assert problems == []
    # each topic had records of these alerts to check
    assert {t: {e.key for e in found[t]} for t in EVENT_TOPICS[:2]} == dict.fromkeys(
        EVENT_TOPICS[:2], alerts
    )
    assert len({e.id for e in found[topics.ENGAGEMENT]}) == 3
    assert {e.key for e in found[topics.ALERTS_STATS]} == alerts
    assert [(r.value, dict(r.headers)["dlq_topic"]) for r in dead] == [
        (b"{not json", topics.ALERTS_REQUESTED.encode())
    ]
    # an id names one event: every copy of it says the same
    facts: dict[str, set[bytes]] = defaultdict(set)
    for event in (e for events_ in found.values() for e in events_):
        facts[event.id].add(event.fact)
    assert {i: f for i, f in facts.items() if len(f) > 1} == {}
    # the alert's ends: one each, with the final numbers, the cancel with the gateway's reason
    ends = {
        (e.key, e.type): e.data
        for e in found[topics.ALERT_EVENTS]
        if e.type in (events.ALERT_COMPLETED, events.ALERT_CANCELLED)
    }
    assert set(ends) == {
        (str(done_id), events.ALERT_COMPLETED),
        (str(cancelled_id), events.ALERT_CANCELLED),
    }
    end = ends[(str(cancelled_id), events.ALERT_CANCELLED)]
    assert cancelled["status_reason"] is not None
    assert (end["status"], end["delivered"], end["failed"], end["reason"]) == (
        "cancelled",
        cancelled["delivered"],
        cancelled["failed"],
        cancelled["status_reason"],
    )
    assert 300 <= end["delivered"] < 3_000
    # a delivery event for each settled batch of the finished broadcast, and no other
    settled = await store.pool.fetch(
        "SELECT id FROM batches WHERE alert_id = $1 AND status = 'done'", done_id
    )
    assert {e.id for e in found[topics.DELIVERIES] if e.key == str(done_id)} == {
        r["id"] for r in settled
    }


async def _snapshots_settled(bootstrap: str, done_id: uuid.UUID, cancelled: asyncpg.Record) -> None:
    """Wait until `alerts.stats` has snapshots with both alerts' final numbers (and the taps)."""
    final = {
        str(done_id): (120, 3),
        str(cancelled["id"]): (cancelled["delivered"], 0),
    }

    def latest(found: Records) -> dict[str, tuple[int, int]]:
        numbers: dict[str, tuple[int, int]] = {}
        for record in found:
            data = CloudEvent.from_record(record.headers, record.value).data
            numbers[data["alert_id"]] = (data["delivered"], data["taps"])
        return numbers

    found = await read_back(
        bootstrap, topics.ALERTS_STATS, set(final), enough=lambda f: latest(f) == final, within=60
    )
    assert latest(found) == final
