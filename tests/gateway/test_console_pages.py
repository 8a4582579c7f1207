"""The console's page and assets as the gateway serves them: the security headers, the
media types, and a name outside the console's own files refused (no database needed)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from gateway.config import GatewaySettings
from gateway.main import create_app
from gateway.routes.console import CONSOLE_DIR


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose lifespan does not run: the console reads no state."""
    settings = GatewaySettings(
        environment="test", tracking_secret=SecretStr("test-tracking-secret-0123456789")
    )
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as client:
        yield client


async def test_the_page_is_korean_with_a_strict_policy(http: httpx.AsyncClient) -> None:
    answer = await http.get("/console/")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert '<html lang="ko">' in answer.text
    policy = answer.headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in policy
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    # the page loads its script from the gateway, none inline
    assert '<script type="module" src="/console/assets/app.js"></script>' in answer.text
    assert answer.text.count("<script") == 1


async def test_without_the_slash_it_redirects(http: httpx.AsyncClient) -> None:
    answer = await http.get("/console")
    assert answer.status_code == 308
    assert answer.headers["location"] == "/console/"


async def test_each_asset_is_served_with_its_media_type(http: httpx.AsyncClient) -> None:
    names = sorted(p.name for p in CONSOLE_DIR.iterdir() if p.suffix in {".js", ".css"})
    assert "app.js" in names and "console.css" in names
    for name in names:
        answer = await http.get(f"/console/assets/{name}")
        assert answer.status_code == 200, name
        expected = "text/css" if name.endswith(".css") else "text/javascript"
        assert answer.headers["content-type"].startswith(expected), name
        assert "content-security-policy" in answer.headers


@pytest.mark.parametrize(
    "name", ["index.html", "missing.js", "..%2F..%2Fmain.py", "%2E%2E%2Fconfig.py", "app.js.bak"]
)
async def test_a_name_outside_the_assets_is_not_found(http: httpx.AsyncClient, name: str) -> None:
    answer = await http.get(f"/console/assets/{name}")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
