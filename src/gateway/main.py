"""The gateway's app factory; its lifespan is the only place that wires things together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from common import problems
from common.collector import tune_collector
from common.db import create_engine, session_factory
from common.kafka import create_producer
from common.logs import configure_logging
from common.tokens import TokenSigner
from gateway import approvals, taps
from gateway import metrics as gateway_metrics
from gateway.cap import AreaTable
from gateway.config import DEFAULT_CAP_AREAS, GatewaySettings, load_settings
from gateway.metrics import GatewayMetrics, RequestMetrics
from gateway.outbox import OutboxRelay
from gateway.routes import (
    accounts,
    alerts,
    audit,
    console,
    control,
    decisions,
    followups,
    health,
    recipients,
    session,
    stats,
    subscribers,
    tracking,
)
from gateway.routes.responses import (
    AUTH_ERRORS,
    SESSION_ONLY,
    SESSION_SCHEME,
    UNREADABLE_BODY,
    problem_doc,
)
from gateway.routes.session import Credentials
from gateway.schemas import AlertCreate
from gateway.state import GatewayState, KafkaLink
from gateway.tap_publisher import TapPublisher
from gateway.taps import TapRoute

logger = logging.getLogger(__name__)

# how long a stopping gateway waits for its taps' events to reach Kafka
TAP_FLUSH_SECONDS = 10.0
# how long a stopping gateway lets a Kafka connection attempt under way end (`KafkaLink`)
KAFKA_CONNECT_GRACE_SECONDS = 5.0

# bodies a route reads by hand (content negotiation) that OpenAPI still documents
DOCUMENTED_MODELS: tuple[type[BaseModel], ...] = (
    AlertCreate,
    Credentials,
    problems.ProblemDetails,
)


def create_app(settings: GatewaySettings) -> FastAPI:
    """The gateway application for `settings`."""
    metrics = GatewayMetrics()
    # read at build time so a bad table stops the gateway before it serves anything
    cap_areas = AreaTable.load(settings.gateway_cap_area_map or DEFAULT_CAP_AREAS)
    tap_events = TapPublisher(metrics, settings.gateway_tap_max_pending)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, settings.database_pool_size)
        sessions = session_factory(engine)
        kafka = KafkaLink(create_producer(settings.kafka_bootstrap, "allim-gateway"))
        relay = OutboxRelay(
            sessions,
            kafka,
            metrics,
            poll_seconds=settings.gateway_outbox_poll_seconds,
            batch_size=settings.gateway_outbox_batch,
            linger_seconds=settings.gateway_outbox_linger_seconds,
            retention_hours=settings.gateway_outbox_retention_hours,
        )
        state = GatewayState(
            settings=settings,
            engine=engine,
            sessions=sessions,
            kafka=kafka,
            signer=TokenSigner(settings.tracking_secret.get_secret_value().encode()),
            metrics=metrics,
            cap_areas=cap_areas,
            wake_outbox=relay.wake,
        )
        app.state.gateway = state
        connecting = asyncio.create_task(kafka.connect_forever(settings.kafka_bootstrap))
        tasks = [
            connecting,
            asyncio.create_task(relay.run()),
            asyncio.create_task(
                approvals.sweep_forever(sessions, settings.gateway_approval_sweep_seconds)
            ),
        ]
        tasks.append(tune_collector())
        try:
            yield
        finally:
            await kafka.stop_connecting(connecting, KAFKA_CONNECT_GRACE_SECONDS)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            # the taps answered are sent before the producer stops (Kafka down: not forever)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tap_events.flush(), TAP_FLUSH_SECONDS)
            # also when it never connected: an unclosed producer leaks its client
            await kafka.producer.stop()
            await engine.dispose()

    app = FastAPI(
        title="allim gateway",
        version="0.1.0",
        description=(
            "Alert intake and approval, subscribers, tracking links, status and stats. A caller "
            "is a named user, known by an API key in `X-API-Key` or by a signed-in session "
            "(`POST /v1/session`; its changes carry `X-CSRF-Token`). Roles: `viewer` reads; "
            "`operator` creates, previews, tests and cancels alerts and manages subscribers; "
            "`approver` does that and approves or rejects others' alerts; `admin` manages "
            "users and keys; the audit log is for `approver` and `admin`. Every error is "
            "`application/problem+json` (RFC 9457)."
        ),
        lifespan=lifespan,
    )
    problems.install(app)
    app.include_router(alerts.router)
    app.include_router(decisions.router)
    app.include_router(control.router)
    app.include_router(recipients.router)
    app.include_router(followups.router)
    app.include_router(session.router)
    app.include_router(health.router)
    app.include_router(subscribers.router)
    app.include_router(stats.router)
    app.include_router(audit.router)
    app.include_router(accounts.router)
    app.include_router(tracking.create_router(settings))
    app.include_router(console.create_router())

    app.add_middleware(RequestMetrics, metrics=metrics)
    # added last, so the outermost: a tap is answered before routing and the other middleware
    app.add_middleware(TapRoute, settings=settings, metrics=metrics, publisher=tap_events)

    app.include_router(gateway_metrics.create_router(metrics, settings.gateway_metrics_token))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema["paths"][taps.ROUTE] = taps.OPERATION  # answered ahead of FastAPI
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in DOCUMENTED_MODELS:
                model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(model_schema.pop("$defs", {}))
                components[model.__name__] = model_schema
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    _document_errors(operation)
                    _streams_as_3_1(operation)
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
            _document_sessions(schema, settings.gateway_session_cookie)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _document_errors(operation: dict[str, Any]) -> None:
    """Every route answers errors as problem+json: say so in its OpenAPI operation."""
    responses = operation.setdefault("responses", {})
    if "422" in responses:
        # a route's own description of its 422 stays; FastAPI's generic one is replaced
        described = responses["422"].get("description", "Validation Error")
        if described == "Validation Error":
            described = "A field is invalid; `errors` names each one."
        responses["422"] = problem_doc(described)
    if operation.get("security"):
        for status, response in AUTH_ERRORS.items():
            responses.setdefault(str(status), response)
    # a body FastAPI reads itself has the one media type: bytes it cannot decode are its 400
    # (a route that negotiates reads its body by hand and documents its own answers)
    content = operation.get("requestBody", {}).get("content", {})
    if list(content) == ["application/json"]:
        for status, response in UNREADABLE_BODY.items():
            responses.setdefault(str(status), response)


def _document_sessions(schema: dict[str, Any], cookie: str) -> None:
    """A caller is known by an API key or by a signed-in session: where the key works, say
    that the session's cookie does too; a route that asked for the session alone keeps it."""
    schemes = schema["components"].setdefault("securitySchemes", {})
    schemes[SESSION_SCHEME] = {
        "type": "apiKey",
        "in": "cookie",
        "name": cookie,
        "description": "A signed-in session (`POST /v1/session`); a change made with it "
        "carries the session's CSRF token in `X-CSRF-Token`.",
    }
    session_only = SESSION_ONLY["security"]
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            security = operation.get("security")
            if not security:
                continue
            if session_only[0] in security:
                operation["security"] = session_only
            else:
                security.extend(session_only)


def _streams_as_3_1(operation: dict[str, Any]) -> None:
    """A stream's media type as OpenAPI 3.1 has it: `schema` describes each item.

    FastAPI writes 3.2's `itemSchema` for a streaming route into a 3.1.0 document, which
    validators and client generators refuse; a route's own `schema` for its items stays."""
    for response in operation.get("responses", {}).values():
        for media in response.get("content", {}).values():
            item = media.pop("itemSchema", None)
            if item is not None:
                media.setdefault("schema", item)


def app_from_environment() -> FastAPI:
    """The app from the environment's settings: the factory each uvicorn worker calls."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_json)
    return create_app(settings)
