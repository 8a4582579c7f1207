"""`allim analytics` killed with SIGKILL in the middle of a stream loses and doubles nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from tests.analytics.streams import Stream
from tests.waiting import caught_up, eventually

from analytics.consumer import SUBSCRIBED
from cli.processes import Service, free_port
from common.topics import partitions

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _consumer(database_url: str, bootstrap: str, group: str, log: Path) -> Service:
    port = free_port()
    return Service(
        name="analytics",
        args=["analytics"],
        env={
            "ALLIM_DATABASE_URL": database_url,
            "ALLIM_KAFKA_BOOTSTRAP": bootstrap,
            "ALLIM_ANALYTICS_GROUP_ID": group,
            "ALLIM_ANALYTICS_CONSUMER_NAME": group[-32:],
            "ALLIM_ANALYTICS_METRICS_PORT": str(port),
            # small polls: many transactions, so the kill lands between and inside them
            "ALLIM_ANALYTICS_MAX_BATCH": "150",
        },
        ready_url=f"http://127.0.0.1:{port}/metrics",
        log_path=log,
    )


async def _applied_to_the_end(bootstrap: str, group: str) -> None:
    """Wait until the group committed the end of every analytics partition: the consumer
    commits after its transaction, so every record published so far is applied."""
    await caught_up(bootstrap, group, partitions(*SUBSCRIBED), 90)


def _duplicates_skipped(metrics_url: str) -> float:
    text = httpx.get(metrics_url).text
    for line in text.splitlines():
        if line.startswith('allim_analytics_events_total{outcome="duplicate"}'):
            return float(line.split()[-1])
    return 0.0


async def test_sigkill_mid_stream_then_restart_counts_every_event_exactly_once(
    database_url: str,
    kafka_topics: str,
    pool: asyncpg.Pool,
    producer: AIOKafkaProducer,
    streams: type[Stream],
    group: str,
    tmp_path: Path,
) -> None:
    stream = streams.build(alerts=2, subscribers=1500, taps=2500, seed=7)
    items = stream.with_duplicates(every=9)
    first = _consumer(database_url, kafka_topics, group, tmp_path / "first.log")
    first.start()
    try:
        await asyncio.to_thread(first.wait_ready, 60)
        half = len(items) // 2
        await streams.publish(producer, items[:half])

        async def some_applied() -> bool:
            done = await streams.rollups(pool, stream.alerts)
            return sum(e.taps for e in done.values()) > 300

        await eventually(some_applied, 60, what="some applied")
        first.kill()
    finally:
        first.stop()
    partial = await streams.rollups(pool, stream.alerts)
    assert sum(e.taps for e in partial.values()) < 2 * 2500, "the kill came too late to test"

    await streams.publish(producer, items[half:])
    second = _consumer(database_url, kafka_topics, group, tmp_path / "second.log")
    second.start()
    try:
        await asyncio.to_thread(second.wait_ready, 60)

        await _applied_to_the_end(kafka_topics, group)
        assert await streams.rollups(pool, stream.alerts) == stream.expected
        # the restarted consumer did meet events it had to recognise and skip
        assert second.ready_url is not None
        assert await asyncio.to_thread(_duplicates_skipped, second.ready_url) > 0
    finally:
        assert second.stop() == 0, second.tail()
    async with pool.acquire() as connection:
        for alert in stream.alerts:
            readers = await connection.fetchval(
                "SELECT count(*) FROM alert_readers WHERE alert_id = $1", alert
            )
            assert readers == stream.expected[alert].readers


async def test_consumers_joining_and_leaving_mid_stream_count_every_event_exactly_once(
    database_url: str,
    kafka_topics: str,
    pool: asyncpg.Pool,
    producer: AIOKafkaProducer,
    streams: type[Stream],
    group: str,
    tmp_path: Path,
) -> None:
    # six alerts, so their partitions spread over both members of the group
    stream = streams.build(alerts=6, subscribers=400, taps=600, seed=13)
    items = stream.with_duplicates(every=11)
    third = len(items) // 3
    first = _consumer(database_url, kafka_topics, group, tmp_path / "a.log")
    second = _consumer(database_url, kafka_topics, group, tmp_path / "b.log")
    try:
        first.start()
        await asyncio.to_thread(first.wait_ready, 60)
        await streams.publish(producer, items[:third])
        # a second member joins: the group rebalances while the first one is applying
        second.start()
        await asyncio.to_thread(second.wait_ready, 60)
        await streams.publish(producer, items[third : 2 * third])
        # the first member leaves: its partitions move to the second mid-stream
        assert await asyncio.to_thread(first.stop) == 0, first.tail()
        await streams.publish(producer, items[2 * third :])

        await _applied_to_the_end(kafka_topics, group)
        assert await streams.rollups(pool, stream.alerts) == stream.expected
    finally:
        first.stop()
        assert second.stop() == 0, second.tail()
    assert "partitions revoked" in first.tail(200)
    assert "partitions assigned" in second.tail(200)
