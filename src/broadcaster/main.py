"""`allim broadcaster`: the planner, the senders, or both in one process.

This module is the only place that wires things together: settings in, clients created
once and closed once, SIGTERM turned into a graceful stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import httpx
import uvloop
from aiokafka import AIOKafkaConsumer
from prometheus_client import start_http_server
from pydantic import SecretStr

from broadcaster import control_feed
from broadcaster.buckets import Buckets
from broadcaster.config import BroadcasterSettings
from broadcaster.control import Control, Priority
from broadcaster.deps import InFlight, SenderDeps, SendOptions, SmsChannel
from broadcaster.dispatch import Dispatcher
from broadcaster.metrics import BroadcasterMetrics
from broadcaster.planner import Planner
from broadcaster.planning_loop import consume_requests
from broadcaster.providers.base import Provider
from broadcaster.providers.kakao import KakaoOptions, KakaoProvider
from broadcaster.providers.sms import make_sms_provider
from broadcaster.publishing import Publisher
from broadcaster.quiet import next_brand_window
from broadcaster.ratelimit import GlobalRateLimiter
from broadcaster.scheduler import poll_due
from broadcaster.settling import Settler
from broadcaster.shared_bucket import RateLimits
from broadcaster.store import Store
from common import topics
from common.collector import tune_collector
from common.db import asyncpg_dsn
from common.kafka import create_consumer, create_producer
from common.quiet_hours import QuietHours
from common.supervision import Job, supervise
from common.tokens import TokenSigner
from common.topics import ensure_topics

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from broadcaster.providers.webhook import WebhookProvider

logger = logging.getLogger(__name__)

Role = Literal["planner", "sender", "all"]
Options = TypeVar("Options", bound="DataclassInstance")


def http_client(settings: BroadcasterSettings) -> httpx.AsyncClient:
    """The one HTTP client every provider request goes through: keep-alive, bounded."""
    connections = settings.broadcaster_max_in_flight + 2
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.broadcaster_http_timeout_seconds),
        limits=httpx.Limits(
            max_connections=connections,
            max_keepalive_connections=connections,
            keepalive_expiry=30.0,
        ),
    )


def options(
    kind: type[Options], settings: BroadcasterSettings, prefix: str, **given: Any
) -> Options:
    """`kind` with each field set from the setting `<prefix><field>`, or from `given`.

    The settings hold the one set of defaults: a field with no such setting keeps a default
    of its own only when it is not configurable (a rate cut factor, say); a field with
    neither makes `kind` refuse to be built.
    """
    values = dict(given)
    for field in dataclasses.fields(kind):
        name = prefix + field.name
        if field.init and field.name not in values and name in type(settings).model_fields:
            value = getattr(settings, name)
            values[field.name] = value.get_secret_value() if isinstance(value, SecretStr) else value
    return kind(**values)


def kakao_options(settings: BroadcasterSettings) -> KakaoOptions:
    """Where the dealer is and who we are to it."""
    return options(
        KakaoOptions, settings, "kakao_", default_button=settings.broadcaster_default_button
    )


def send_options(settings: BroadcasterSettings) -> SendOptions:
    """The sending pipe's knobs."""
    return options(
        SendOptions,
        settings,
        "broadcaster_",
        public_base_url=settings.public_base_url,
        retry_base=settings.broadcaster_retry_base_seconds,
        retry_cap=settings.broadcaster_retry_cap_seconds,
    )


def rate_limits(settings: BroadcasterSettings) -> RateLimits:
    """The shared send-rate budget and how it adapts."""
    return options(RateLimits, settings, "broadcaster_rate_")


def sms_rate_limits(settings: BroadcasterSettings) -> RateLimits:
    """The SMS dealer's budget: the shared budget's adaptation, with its own rates and
    bucket (`<bucket>-sms`)."""
    return dataclasses.replace(
        rate_limits(settings),
        messages_per_second=settings.broadcaster_sms_rate_messages_per_second,
        requests_per_second=settings.broadcaster_sms_rate_requests_per_second,
        bucket=f"{settings.broadcaster_rate_bucket}-sms",
    )


def sms_channel(
    settings: BroadcasterSettings, store: Store, client: httpx.AsyncClient
) -> SmsChannel | None:
    """The fallback's dealer and budget, when the settings name an SMS dealer."""
    provider = make_sms_provider(settings, client)
    if provider is None:
        return None
    return SmsChannel(provider, GlobalRateLimiter(Buckets(store.pool), sms_rate_limits(settings)))


def quiet_hours(settings: BroadcasterSettings) -> QuietHours:
    """The operator's quiet hours, when promotional alerts wait."""
    return settings.quiet_hours()


def webhook_provider(settings: BroadcasterSettings, client: httpx.AsyncClient) -> WebhookProvider:
    """The webhook adapter: where batches go, and the key that signs them (unset: unsigned)."""
    from broadcaster.providers.webhook import WebhookProvider

    secret = settings.broadcaster_webhook_secret
    return WebhookProvider(
        client,
        settings.broadcaster_webhook_url,
        secret.get_secret_value() if secret is not None else None,
    )


async def run(settings: BroadcasterSettings, role: Role) -> int:
    """Run the planner and/or senders until SIGTERM or SIGINT; 0 after a clean stop."""
    # one line per provider request would drown everything else
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    metrics = BroadcasterMetrics()
    if settings.broadcaster_metrics_port:
        start_http_server(
            settings.broadcaster_metrics_port,
            addr=settings.broadcaster_metrics_host,
            registry=metrics.registry,
        )
    await ensure_topics(settings.kafka_bootstrap)
    # each running shard holds a connection for its lock: urgent and normal ones, each kind
    # up to twice `shard_concurrency` while shards that sent their last batch drain; and the
    # rate limiter's two buckets lease at once, each on a connection of its own
    connections = settings.database_pool_size + 4 * settings.broadcaster_shard_concurrency + 2
    store = await Store.connect(asyncpg_dsn(settings.database_url), connections)
    producer = create_producer(settings.kafka_bootstrap, "allim-broadcaster")
    await producer.start()
    publisher = Publisher(producer)
    jobs: dict[str, Job] = {}
    try:
        async with contextlib.AsyncExitStack() as stack:
            # every job ends before the clients it uses are closed, also after an error
            if role in ("planner", "all"):
                jobs |= await stack.enter_async_context(
                    _planner(settings, store, publisher, metrics, stopping)
                )
            if role in ("sender", "all"):
                jobs |= await stack.enter_async_context(
                    _senders(settings, store, publisher, metrics, stopping)
                )
            logger.info("broadcaster running as %s", role)
            collecting = tune_collector()
            try:
                status = await supervise(jobs, stopping)
            finally:
                collecting.cancel()
    finally:
        await producer.stop()
        await store.close()
    logger.info("broadcaster stopped")
    return status


@contextlib.asynccontextmanager
async def _planner(
    settings: BroadcasterSettings,
    store: Store,
    publisher: Publisher,
    metrics: BroadcasterMetrics,
    stopping: asyncio.Event,
) -> AsyncIterator[dict[str, Job]]:
    planner = Planner(store, publisher, metrics, settings.broadcaster_shard_size)
    consumer = create_consumer(
        settings.kafka_bootstrap,
        settings.broadcaster_planner_group,
        "allim-planner",
        topics.ALERTS_REQUESTED,
        session_timeout_ms=settings.broadcaster_session_timeout_ms,
    )
    await consumer.start()
    try:
        yield {
            "planner": lambda: consume_requests(planner, consumer, stopping),
            "due poller": lambda: poll_due(
                planner,
                settings.broadcaster_due_poll_seconds,
                settings.broadcaster_stall_seconds,
                stopping,
            ),
        }
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def _senders(
    settings: BroadcasterSettings,
    store: Store,
    publisher: Publisher,
    metrics: BroadcasterMetrics,
    stopping: asyncio.Event,
) -> AsyncIterator[dict[str, Job]]:
    client = http_client(settings)
    provider = make_provider(settings, client)
    quiet = quiet_hours(settings)
    control = Control()
    metrics.shards_paused.set_function(control.held_shards)
    deps = SenderDeps(
        store=store,
        provider=provider,
        limiter=GlobalRateLimiter(Buckets(store.pool), rate_limits(settings)),
        publisher=publisher,
        settler=Settler(store, publisher, window=settings.broadcaster_settle_window_seconds),
        control=control,
        priority=Priority(),
        metrics=metrics,
        signer=TokenSigner(settings.tracking_secret.get_secret_value().encode()),
        in_flight=InFlight(settings.broadcaster_max_in_flight),
        options=send_options(settings),
        held_until=quiet.held_until,
        brand_resume_at=next_brand_window,
        sms=sms_channel(settings, store, client),
    )
    controls = AIOKafkaConsumer(
        topics.ALERTS_CONTROL,
        bootstrap_servers=settings.kafka_bootstrap,
        client_id="allim-control",
        group_id=None,
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    consumer = create_consumer(
        settings.kafka_bootstrap,
        settings.broadcaster_sender_group,
        "allim-sender",
        session_timeout_ms=settings.broadcaster_session_timeout_ms,
        max_poll_interval_ms=600_000,
    )
    await controls.start()
    await consumer.start()
    dispatcher = Dispatcher(consumer, deps, settings.broadcaster_shard_concurrency, stopping)
    try:
        yield {
            "dispatcher": dispatcher.run,
            "control consumer": lambda: control_feed.consume_forever(
                control, controls, publisher, stopping
            ),
            "control poller": lambda: control_feed.poll_forever(
                control, store, settings.broadcaster_control_poll_seconds, stopping
            ),
        }
    finally:
        await consumer.stop()
        await controls.stop()
        await client.aclose()


def make_provider(settings: BroadcasterSettings, client: httpx.AsyncClient) -> Provider:
    """The provider adapter the settings name."""
    if settings.broadcaster_provider == "webhook":
        return webhook_provider(settings, client)
    return KakaoProvider(client, kakao_options(settings))


def serve(settings: BroadcasterSettings, role: Role) -> int:
    """Run the broadcaster in the foreground (uvloop); the process's exit status."""
    return uvloop.run(run(settings, role))
