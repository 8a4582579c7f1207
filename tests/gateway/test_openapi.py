"""The gateway's OpenAPI document, as the tools integrators feed it to take it.

`openapi-spec-validator` checks the whole document; the checks after it pin what a client
generated from the document relies on. `tests/fuzz/test_gateway.py` runs schemathesis
against a live gateway.
"""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate
from pydantic import SecretStr

from gateway.config import GatewaySettings
from gateway.main import create_app


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    """The document as `/openapi.json` serves it (built without a database or broker)."""
    settings = GatewaySettings(
        environment="test", tracking_secret=SecretStr("test-tracking-secret-0123456789")
    )
    return create_app(settings).openapi()


def test_the_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1.")
    validate(spec)  # raises, naming the place, on anything the 3.1 schema refuses


def test_the_event_stream_is_described_in_3_1_terms(spec: dict[str, Any]) -> None:
    content = spec["paths"]["/v1/alerts/{alert_id}/events"]["get"]["responses"]["200"]["content"]
    stream = content["text/event-stream"]
    assert "itemSchema" not in stream  # OpenAPI 3.2's keyword
    assert stream["schema"]["type"] == "string"
    assert "AlertPublic" in stream["schema"]["description"]
