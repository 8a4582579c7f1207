"""The gateway's app factory; its lifespan is the only place that wires things together."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from common.db import create_engine, session_factory
from common.kafka import create_producer
from common.tokens import TokenSigner
from gateway import problems
from gateway.config import GatewaySettings
from gateway.metrics import GatewayMetrics
from gateway.routes import subscribers, tracking
from gateway.state import GatewayState, KafkaLink


def create_app(settings: GatewaySettings) -> FastAPI:
    """The gateway application for `settings`."""
    metrics = GatewayMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, settings.database_pool_size)
        kafka = KafkaLink(create_producer(settings.kafka_bootstrap, "allim-gateway"))
        state = GatewayState(
            settings=settings,
            engine=engine,
            sessions=session_factory(engine),
            kafka=kafka,
            signer=TokenSigner(settings.tracking_secret.get_secret_value().encode()),
            metrics=metrics,
        )
        app.state.gateway = state
        connecting = asyncio.create_task(kafka.connect_forever())
        try:
            yield
        finally:
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connecting
            if kafka.ready.is_set():
                await kafka.producer.stop()
            await engine.dispose()

    app = FastAPI(
        title="allim gateway",
        version="0.1.0",
        description="Alert intake, subscribers, tracking links, status and stats.",
        lifespan=lifespan,
    )
    problems.install(app)
    app.include_router(subscribers.router)
    app.include_router(tracking.create_router(settings, metrics))

    @app.middleware("http")
    async def measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.requests.labels(request.method, path, str(response.status_code)).inc()
        metrics.latency.labels(request.method, path).observe(time.perf_counter() - started)
        return response

    @app.get("/metrics", include_in_schema=False)
    async def export_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", tags=["health"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
