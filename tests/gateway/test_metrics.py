"""`/metrics` on the gateway's public port: a bearer token when one is set, else loopback
clients only. The route needs neither PostgreSQL nor Kafka: the app is served without its
lifespan."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from gateway.config import GatewaySettings
from gateway.main import create_app

TOKEN = "metrics-token-0123456789abcdef"


def _settings(token: str | None) -> GatewaySettings:
    return GatewaySettings(
        environment="test",
        tracking_secret=SecretStr("test-tracking-secret-0123456789"),
        gateway_metrics_token=None if token is None else SecretStr(token),
    )


async def _get(settings: GatewaySettings, client: str, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(settings), client=(client, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        return await http.get("/metrics", headers=headers)


@pytest.mark.parametrize("client", ["127.0.0.1", "::1"])
async def test_without_a_token_a_loopback_client_reads_the_metrics(client: str) -> None:
    response = await _get(_settings(None), client)

    assert response.status_code == 200
    assert "allim_gateway_taps_total" in response.text


@pytest.mark.parametrize("client", ["203.0.113.7", "10.0.0.5", "testclient"])
async def test_without_a_token_any_other_client_is_refused(client: str) -> None:
    response = await _get(_settings(None), client)

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "ALLIM_GATEWAY_METRICS_TOKEN" in response.json()["detail"]
    assert "allim_gateway" not in response.text


async def test_with_a_token_the_scrape_must_carry_it_from_anywhere() -> None:
    settings = _settings(TOKEN)

    accepted = await _get(settings, "203.0.113.7", authorization=f"Bearer {TOKEN}")
    assert accepted.status_code == 200
    assert "allim_gateway_outbox_unsent" in accepted.text

    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
        refused = await _get(settings, "127.0.0.1", **headers)  # loopback is no way round
        assert refused.status_code == 401, headers
        assert refused.headers["www-authenticate"].startswith("Bearer")


def test_a_short_token_is_refused_at_start_up() -> None:
    with pytest.raises(ValidationError, match="gateway_metrics_token"):
        _settings("short")
