"""`allim analytics`: wiring of the consumer, the snapshot publisher and the metrics endpoint.

This is the only place that creates clients; they are closed in reverse order on the way
out, also when start-up fails half way. The long-running jobs run under one supervisor:
a Kafka or PostgreSQL error restarts a job after a back-off, a bug stops the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg
import uvloop
from aiokafka.errors import KafkaError
from prometheus_client import start_http_server

from analytics.config import AnalyticsSettings
from analytics.consumer import DATABASE_ERRORS, Aggregator
from analytics.metrics import AnalyticsMetrics
from analytics.snapshots import SnapshotPublisher
from analytics.store import RollupStore, prepare_connection
from common.collector import tune_collector
from common.db import asyncpg_dsn
from common.kafka import create_consumer, create_producer
from common.supervision import Job, supervise
from common.topics import ensure_topics
from common.waiting import wait_or_stop

logger = logging.getLogger(__name__)

RETRY_SECONDS = 2.0


async def _ensure_topics(settings: AnalyticsSettings) -> None:
    await ensure_topics(settings.kafka_bootstrap)


async def forget_processed(
    store: RollupStore, older_than: timedelta, every: float, stop: asyncio.Event
) -> None:
    """Delete remembered event ids older than `older_than`, every `every` seconds."""
    while not stop.is_set():
        try:
            forgotten = await store.forget(older_than)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            logger.warning("forgetting old event ids failed; trying again later", exc_info=True)
        else:
            if forgotten:
                logger.info("forgot %d event ids older than %s", forgotten, older_than)
        await wait_or_stop(stop, every)


async def _until_up(what: str, start: Callable[[], Awaitable[None]], stop: asyncio.Event) -> bool:
    """Run `start` until it succeeds (True), or until `stop` is set (False): Kafka or
    PostgreSQL may come up after this process, and that is no reason to crash."""
    while not stop.is_set():
        try:
            await start()
            return True
        except (KafkaError, *DATABASE_ERRORS):
            logger.warning("%s is not reachable yet; retrying", what, exc_info=True)
        await wait_or_stop(stop, RETRY_SECONDS)
    return False


async def run(settings: AnalyticsSettings, stop: asyncio.Event) -> int:
    """Consume and publish until `stop` is set; 0 after a clean stop, 1 after a bug."""
    metrics = AnalyticsMetrics(recent_alerts=settings.analytics_recent_alerts)
    server, thread = start_http_server(
        settings.analytics_metrics_port,
        settings.analytics_metrics_host,
        registry=metrics.registry,
    )
    logger.info(
        "metrics on http://%s:%s/metrics",
        settings.analytics_metrics_host,
        settings.analytics_metrics_port,
    )
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(thread.join, 5)
        stack.callback(server.server_close)
        stack.callback(server.shutdown)
        if not await _until_up("Kafka", lambda: _ensure_topics(settings), stop):
            return 0
        pools: list[asyncpg.Pool] = []

        async def open_pool() -> None:
            pools.append(
                await asyncpg.create_pool(
                    asyncpg_dsn(settings.database_url),
                    min_size=1,
                    max_size=3,
                    init=prepare_connection,
                )
            )

        if not await _until_up("PostgreSQL", open_pool, stop):
            return 0
        pool = pools[0]
        stack.push_async_callback(pool.close)
        store = RollupStore(pool, settings.analytics_consumer_name)
        client_id = "allim-analytics"
        producer = create_producer(settings.kafka_bootstrap, client_id)
        # stopped also when it never started: an unstarted producer still holds a client
        stack.push_async_callback(producer.stop)
        if not await _until_up("Kafka", producer.start, stop):
            return 0
        publisher = SnapshotPublisher(store, producer, metrics, settings.analytics_snapshot_seconds)
        # after a restart, the recent alerts get their gauges and a fresh snapshot at once
        publisher.mark(await store.recent(settings.analytics_recent_alerts))
        consumer = create_consumer(
            settings.kafka_bootstrap,
            settings.analytics_group_id,
            client_id,
            max_poll_records=settings.analytics_max_batch,
            # one alert's taps share a partition: let one fetch carry a whole poll of them
            max_partition_fetch_bytes=16 << 20,
            fetch_max_bytes=64 << 20,
        )
        aggregator = Aggregator(
            consumer,
            producer,
            store,
            metrics,
            publisher,
            max_batch=settings.analytics_max_batch,
            poll_seconds=settings.analytics_poll_seconds,
        )
        aggregator.subscribe()
        stack.push_async_callback(consumer.stop)
        if not await _until_up("Kafka", consumer.start, stop):
            return 0
        logger.info("analytics consuming as group %s", settings.analytics_group_id)
        collecting = tune_collector()
        forget_after = timedelta(hours=settings.analytics_dedupe_hours)
        jobs: dict[str, Job] = {
            "aggregator": lambda: aggregator.run(stop),
            "snapshot publisher": lambda: publisher.run(stop),
            "event-id forgetter": lambda: forget_processed(
                store, forget_after, settings.analytics_dedupe_hours * 3600 / 24, stop
            ),
        }
        try:
            status = await supervise(jobs, stop)
        finally:
            collecting.cancel()
    logger.info("analytics stopped")
    return status


def serve(settings: AnalyticsSettings) -> int:
    """Run in the foreground until SIGTERM or SIGINT; the process's exit status."""

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        return await run(settings, stop)

    return uvloop.run(main())
