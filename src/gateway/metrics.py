"""The gateway's Prometheus metrics, on one registry per process, and `/metrics`.

The gateway serves `/metrics` on its own port, which is public. With
`ALLIM_GATEWAY_METRICS_TOKEN` set, a scrape must carry `Authorization: Bearer <token>`
(Prometheus: `authorization: {credentials_file: ...}`); without it, only a client on the
loopback interface is answered, which is every client of a gateway on 127.0.0.1 (the
default) and none from outside one that listens on all interfaces.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from dataclasses import dataclass, field

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.metrics import CATEGORIES, initialise
from common.problems import problem_response

# the label values known in advance, whose series exist from start-up (see common.metrics)
TAP_OUTCOMES = ("recorded", "dropped", "failed", "invalid", "preview")
INTAKE_FORMATS = ("json", "cap")


@dataclass
class GatewayMetrics:
    """Every metric the gateway exports at `/metrics`."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "allim_gateway_requests_total",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "allim_gateway_request_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.outbox_lag = Gauge(
            "allim_gateway_outbox_lag_seconds", "Age of the oldest unsent outbox row", registry=r
        )
        self.outbox_unsent = Gauge(
            "allim_gateway_outbox_unsent", "Outbox rows not yet published", registry=r
        )
        self.outbox_published = Counter(
            "allim_gateway_outbox_published_total", "Outbox rows published to Kafka", registry=r
        )
        self.taps = Counter(
            "allim_gateway_taps_total",
            "Taps on tracking links by outcome",
            ["outcome"],
            registry=r,
        )
        self.alerts_accepted = Counter(
            "allim_gateway_alerts_accepted_total",
            "Alerts accepted by category and format",
            ["category", "format"],
            registry=r,
        )
        initialise(self.taps, TAP_OUTCOMES)
        initialise(self.alerts_accepted, CATEGORIES, INTAKE_FORMATS)


class RequestMetrics:
    """ASGI middleware: requests by route and status, and the time to the response's start.

    Plain ASGI rather than `@app.middleware("http")`, whose per-request task group and
    body streaming cost more than the intake and tap routes themselves.
    """

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_measure(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self.metrics.latency.labels(scope["method"], _route(scope)).observe(
                    time.perf_counter() - started
                )
            await send(message)

        try:
            await self.app(scope, receive, send_and_measure)
        finally:
            self.metrics.requests.labels(scope["method"], _route(scope), str(status)).inc()


def _route(scope: Scope) -> str:
    # the router records the matched route in the scope; its path template keeps labels few
    return str(getattr(scope.get("route"), "path", "unmatched"))


def create_router(metrics: GatewayMetrics, token: SecretStr | None) -> APIRouter:
    """`GET /metrics`: bearer `token` required when set, else loopback clients only."""
    router = APIRouter()
    expected = None if token is None else f"Bearer {token.get_secret_value()}".encode()

    @router.get("/metrics", include_in_schema=False)
    async def export_metrics(request: Request) -> Response:
        if expected is not None:
            given = request.headers.get("authorization", "").encode()
            allowed = hmac.compare_digest(given, expected)
            detail = "Scrape /metrics with 'Authorization: Bearer' and the metrics token."
        else:
            allowed = request.client is not None and _loopback(request.client.host)
            detail = "Without ALLIM_GATEWAY_METRICS_TOKEN, /metrics answers loopback clients only."
        if not allowed:
            return problem_response(
                401, "Unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="metrics"'}
            )
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # not an address (a test client's name, a Unix socket)
        return False
