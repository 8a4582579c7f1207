"""/healthz, /readyz (real PostgreSQL and Kafka, and each one down), /metrics and OpenAPI."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import GatewaySettings
from gateway.main import create_app

pytestmark = pytest.mark.integration


async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        yield http


async def test_healthz_and_readyz_when_everything_is_up(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "postgres": "up", "kafka": "up"}


async def test_readyz_names_postgres_when_it_is_down(gateway_settings: GatewaySettings) -> None:
    settings = gateway_settings.model_copy(
        update={"database_url": "postgresql+asyncpg://allim@127.0.0.1:9/allim"}
    )
    app = create_app(settings)
    async for http in _client(app):
        await asyncio.wait_for(app.state.gateway.kafka.ready.wait(), 30)
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.headers["content-type"] == "application/problem+json"
        assert ready.json()["down"] == ["postgres"]
        assert (await http.get("/healthz")).status_code == 200


async def test_metrics_show_requests_and_outbox(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    text = (await client.get("/metrics")).text
    # samples, not names: a family's HELP line names it even when it has no sample
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    healthz = {"method": "GET", "route": "/healthz", "status": "200"}
    assert any(
        s.name == "allim_gateway_requests_total" and s.labels == healthz and s.value >= 1
        for s in samples
    )
    assert {
        "allim_gateway_outbox_lag_seconds",
        "allim_gateway_outbox_unsent",
        "allim_gateway_request_seconds_bucket",
    } <= {s.name for s in samples}


async def test_openapi_documents_every_alert_route(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    assert {"AlertCreate", "AlertPublic", "AlertAccepted", "AlertPage", "ProblemDetails"} <= set(
        schemas
    )
    assert {"ButtonIn", "AudienceIn"} <= set(schemas)
    body = spec["paths"]["/v1/alerts"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "application/cap+xml"}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), (method, path)
            responses = operation["responses"]
            assert any(code[0] in "23" for code in responses), (method, path)
            if operation.get("security"):
                assert {"401", "403"} <= set(responses), (method, path)
            if "422" in responses:
                assert "application/problem+json" in responses["422"]["content"], (method, path)
    for method, path in [
        ("post", "/v1/alerts"),
        ("get", "/v1/alerts"),
        ("get", "/v1/alerts/{alert_id}"),
        ("post", "/v1/alerts/{alert_id}/cancel"),
        ("get", "/v1/alerts/{alert_id}/events"),
    ]:
        assert {"401", "403", "422"} <= set(spec["paths"][path][method]["responses"])
    assert "HTTPValidationError" not in schemas
    refs = str(spec)
    for name in ("ProblemDetails", "AlertCreate"):
        assert f"#/components/schemas/{name}" in refs


async def test_a_gateway_stopped_while_it_connects_to_kafka_leaves_no_socket_open(
    gateway_settings: GatewaySettings,
) -> None:
    # stopped at sixty points of the producer's start, from at once to well after it; a
    # connection dropped half-way through aiokafka's bootstrap is never closed, and the
    # collection below turns its unclosed socket into this test's failure
    for step in range(60):
        app = create_app(gateway_settings)
        async with app.router.lifespan_context(app):
            await asyncio.sleep(step * 0.002)
    gc.collect()
