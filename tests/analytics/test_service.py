"""The analytics service in-process on the real broker and database: snapshots on
`alerts.stats`, dead letters, metrics, and a clean stop."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from tests.analytics.streams import Stream
from tests.waiting import eventually

from analytics.config import AnalyticsSettings
from analytics.main import run
from cli.processes import free_port
from common import events, topics
from common.events import CloudEvent
from common.messages import AlertStatsData
from common.readback import Records, read_back

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_the_service_publishes_snapshots_dead_letters_poison_and_stops_cleanly(
    database_url: str,
    kafka_topics: str,
    pool: asyncpg.Pool,
    producer: AIOKafkaProducer,
    streams: type[Stream],
    group: str,
) -> None:
    port = free_port()
    settings = AnalyticsSettings(
        environment="test",
        database_url=database_url,
        kafka_bootstrap=kafka_topics,
        tracking_secret="test-tracking-secret-0123456789",
        analytics_group_id=group,
        analytics_consumer_name=group,
        analytics_metrics_port=port,
        analytics_snapshot_seconds=0.5,
        analytics_recent_alerts=2,
    )
    stop = asyncio.Event()
    service = asyncio.create_task(run(settings, stop))
    try:
        stream = streams.build(alerts=3, subscribers=300, taps=400, seed=11)
        poison_key = f"poison-{uuid.uuid4()}"
        await producer.send_and_wait(
            topics.ENGAGEMENT,
            value=b"{not json",
            key=poison_key.encode(),
            headers=CloudEvent(events.LINK_TAPPED, "/allim/test", {}).headers(),
        )
        await streams.publish(producer, stream.with_duplicates(every=7))

        async def settled() -> bool:
            return bool(await streams.rollups(pool, stream.alerts) == stream.expected)

        await eventually(settled, 60, what="settled")

        # the newest snapshot of each alert on alerts.stats says what the rollup says
        keys = {str(a) for a in stream.alerts}

        def final(found: Records) -> bool:
            latest = _latest(found)
            return set(latest) == keys and all(
                latest[k].taps == stream.expected[uuid.UUID(k)].taps for k in keys
            )

        # the publisher sends every 0.5 s; the deadline only bounds a broken build's wait
        found = await read_back(kafka_topics, topics.ALERTS_STATS, keys, enough=final, within=30)
        assert final(found), _latest(found)
        for key, snapshot in _latest(found).items():
            expected = stream.expected[uuid.UUID(key)]
            assert (snapshot.readers, snapshot.forwarded_readers) == (
                expected.readers,
                expected.forwarded_readers,
            )
            assert snapshot.read_rate == pytest.approx(expected.readers / expected.delivered)
        headers = dict(found[-1].headers)
        assert headers["ce_type"] == events.ALERT_STATS.encode()

        dead = await read_back(kafka_topics, topics.DEAD_LETTER, {poison_key})
        assert len(dead) == 1
        dead_headers = dict(dead[0].headers)
        assert dead_headers["dlq_topic"] == topics.ENGAGEMENT.encode()
        assert b"not JSON" in dead_headers["dlq_reason"]
        assert dead[0].value == b"{not json"

        # the poll holding the poison may still be applying; counters follow its commit
        taps = sum(e.taps for e in stream.expected.values())
        text = ""
        async with httpx.AsyncClient() as http:

            async def dead_letter_counted() -> bool:
                nonlocal text
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                return _sample(text, 'allim_analytics_events_total{outcome="dead_letter"}') >= 1

            await eventually(dead_letter_counted, 30, what="dead letter counted")
        gauges = [line for line in text.splitlines() if line.startswith("allim_alert_readers{")]
        assert 1 <= len(gauges) <= 2, gauges
        assert _sample(text, 'allim_analytics_events_total{outcome="duplicate"}') >= 1
        assert _sample(text, 'allim_analytics_taps_total{category="emergency"}') >= taps
    finally:
        stop.set()
        await asyncio.wait_for(service, 30)


def _latest(found: Records) -> dict[str, AlertStatsData]:
    latest: dict[str, AlertStatsData] = {}
    for record in found:
        assert record.key is not None and record.value is not None
        latest[record.key.decode()] = AlertStatsData.model_validate_json(record.value)
    return latest


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


async def test_without_kafka_the_service_waits_and_still_stops_on_request(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = AnalyticsSettings(
        environment="test",
        database_url=database_url,
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        tracking_secret="test-tracking-secret-0123456789",
        analytics_metrics_port=free_port(),
    )
    stop = asyncio.Event()
    service = asyncio.create_task(run(settings, stop))
    # it met the missing broker, said so, and waits to retry instead of ending
    await eventually(lambda: "Kafka is not reachable yet; retrying" in caplog.text, 30)
    assert not service.done()
    stop.set()
    await asyncio.wait_for(service, 10)
