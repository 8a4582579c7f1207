"""The gateway's OpenAPI document, as the tools integrators feed it to take it.

`openapi-spec-validator` checks the whole document; the checks after it pin what a client
generated from the document relies on. `tests/fuzz/test_gateway.py` runs schemathesis
against a live gateway.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError

from gateway.config import GatewaySettings
from gateway.fields import FILLED_PATTERN, Storable
from gateway.main import create_app
from gateway.routes.accounts import KeyCreate, UserCreate
from gateway.routes.decisions import Rejection
from gateway.routes.session import Credentials
from gateway.schemas import AudienceIn


@pytest.fixture(scope="module")
def app() -> FastAPI:
    """The gateway's app, not started: neither the document nor routing needs PostgreSQL or
    Kafka."""
    settings = GatewaySettings(
        environment="test", tracking_secret=SecretStr("test-tracking-secret-0123456789")
    )
    return create_app(settings)


@pytest.fixture(scope="module")
def spec(app: FastAPI) -> dict[str, Any]:
    """The document as `/openapi.json` serves it."""
    return app.openapi()


def test_the_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1.")
    validate(spec)  # raises, naming the place, on anything the 3.1 schema refuses


def test_the_event_stream_is_described_in_3_1_terms(spec: dict[str, Any]) -> None:
    content = spec["paths"]["/v1/alerts/{alert_id}/events"]["get"]["responses"]["200"]["content"]
    stream = content["text/event-stream"]
    assert "itemSchema" not in stream  # OpenAPI 3.2's keyword
    event = stream["schema"]  # each event, as 3.1 tools read a stream's schema
    assert event["properties"]["event"]["enum"] == ["progress", "end"]
    data = event["properties"]["data"]
    assert data["contentMediaType"] == "application/json"
    assert data["contentSchema"] == {"$ref": "#/components/schemas/AlertPublic"}


# a value of each path parameter in the document
PATH_VALUES = {
    "{alert_id}": "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
    "{recipient}": "01012345678",
    "{token}": "a-token",
}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


async def test_every_405_allows_exactly_the_documented_methods(
    app: FastAPI, spec: dict[str, Any]
) -> None:
    wrong: list[str] = []
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        for template, operations in spec["paths"].items():
            path = template
            for name, value in PATH_VALUES.items():
                path = path.replace(name, value)
            documented = {method.upper() for method in operations}
            for method in sorted(set(METHODS) - documented):
                answer = await client.request(method, path)
                allowed = {m.strip() for m in answer.headers.get("allow", "").split(",")}
                if answer.status_code != 405 or allowed != documented:
                    wrong.append(
                        f"{method} {path}: {answer.status_code}, Allow "
                        f"{answer.headers.get('allow')!r}, documented {sorted(documented)}"
                    )
    assert not wrong, "\n".join(wrong)


AUDIENCES = st.one_of(
    st.sampled_from(["all", "All", "", None, 1, []]),
    st.fixed_dictionaries(
        {},
        optional={
            "all": st.sampled_from([True, False, None, "yes", 1]),
            "districts": st.lists(st.sampled_from(["장안구", "권선구"]), max_size=2),
            "tags": st.lists(st.sampled_from(["bus", "senior"]), max_size=2),
            "everyone": st.just(True),
        },
    ),
)


def _agree(
    schema: Draft202012Validator,
    validate: Callable[[Any], object],
    values: st.SearchStrategy[Any],
) -> None:
    """The schema accepts every one of `values` the gateway's `validate` accepts (raising
    `ValidationError` for the others), and no other."""

    @settings(max_examples=300, deadline=None, database=None)
    @given(values)
    def agree(value: object) -> None:
        try:
            validate(value)
        except ValidationError:
            accepted = False
        else:
            accepted = True
        assert schema.is_valid(value) == accepted, value

    agree()


def test_the_audience_schema_accepts_what_the_gateway_accepts(spec: dict[str, Any]) -> None:
    schema = Draft202012Validator(spec["components"]["schemas"]["AudienceIn"])
    _agree(schema, AudienceIn.model_validate, AUDIENCES)
    assert not schema.is_valid({"all": False})  # the case: an audience of nobody


def _query_schema(spec: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    parameters = spec["paths"][path]["get"]["parameters"]
    return next(p["schema"] for p in parameters if p["in"] == "query" and p["name"] == name)


# text of any letters, and the white space and NUL the gateway's checks are about
TEXTS = st.one_of(
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=20),
    st.sampled_from(["\f", "\x1c", "\u3000 ", "\x00", "a\x00", " ok ", "\x85x"]),
)


@pytest.mark.parametrize("name", ["actor", "action"])
def test_a_text_filter_states_the_nul_the_gateway_refuses(spec: dict[str, Any], name: str) -> None:
    # schemathesis sent `action=...%00...`: a value the document allowed, refused with 422
    schema = Draft202012Validator(_query_schema(spec, "/v1/audit", name))
    _agree(schema, TypeAdapter(Annotated[str, Storable]).validate_python, TEXTS)
    assert not schema.is_valid("alert.\x00cancel")


def test_the_filled_pattern_is_pythons_white_space_and_nul() -> None:
    # every code point (but the surrogates, which no valid text holds) on its own: the
    # pattern finds nothing in exactly the white space `str.strip()` removes, and NUL
    filled = re.compile(FILLED_PATTERN)
    for point in (*range(0xD800), *range(0xE000, 0x110000)):
        char = chr(point)
        assert (filled.search(char) is None) == (char.isspace() or char == "\x00"), hex(point)


# what the routes refused after their models had taken it
BLANK_OR_NUL = ("\f", "\x1c\u3000", "a\x00b")


@pytest.mark.parametrize(
    ("model", "field", "rest", "refused"),
    [
        (Rejection, "reason", {}, BLANK_OR_NUL),
        (UserCreate, "name", {"role": "viewer"}, BLANK_OR_NUL),
        (KeyCreate, "label", {"user_id": 1}, BLANK_OR_NUL),
        # a blank name is a wrong name (401), as any unknown name is
        (Credentials, "name", {"password": "x"}, ("a\x00b",)),
    ],
)
def test_a_text_field_states_the_blanks_and_nul_the_gateway_refuses(
    spec: dict[str, Any],
    model: type[BaseModel],
    field: str,
    rest: dict[str, object],
    refused: tuple[str, ...],
) -> None:
    # schemathesis sent a rejection whose reason was a form feed: allowed by the document,
    # refused with 422; a NUL in any of these was a 500
    properties = spec["components"]["schemas"][model.__name__]["properties"]
    schema = Draft202012Validator(properties[field])
    values = TEXTS | st.none()  # a label may be left out as null
    _agree(schema, lambda value: model.model_validate(rest | {field: value}), values)
    for value in refused:
        assert not schema.is_valid(value), value


def _schema_keys(node: object, parent: str = "") -> Iterator[tuple[str, str]]:
    """Every key of every schema object in the document, with the key it sits under."""
    if isinstance(node, dict):
        for key, value in node.items():
            if parent not in ("properties", "paths", "schemas", "responses", "content"):
                yield parent, key
            yield from _schema_keys(value, key)
    elif isinstance(node, list):
        for item in node:
            yield from _schema_keys(item, parent)


def test_no_constraint_is_left_in_pydantic_words(spec: dict[str, Any]) -> None:
    # `ge`/`le` on an optional field once reached the document as they are: keywords no JSON
    # Schema tool knows, so a client would send what the gateway refuses
    leaked = {(parent, key) for parent, key in _schema_keys(spec) if key in PYDANTIC_WORDS}
    assert not leaked


PYDANTIC_WORDS = {"ge", "le", "gt", "lt", "min_length", "max_length", "multiple_of"}


def test_the_answers_schemathesis_found_undocumented_are_documented(
    spec: dict[str, Any],
) -> None:
    paths = spec["paths"]
    documented = {
        ("get", "/v1/subscribers/{recipient}"): "404",
        ("delete", "/v1/subscribers/{recipient}"): "404",
        ("put", "/v1/subscribers/{recipient}"): "400",
        ("post", "/v1/alerts/{alert_id}/reject"): "400",
        ("post", "/v1/subscribers:import"): "400",
        ("post", "/v1/session"): "415",
        ("delete", "/v1/session"): "404",
    }
    for (method, path), status in documented.items():
        answer = paths[path][method]["responses"][status]
        assert "application/problem+json" in answer["content"], (method, path, status)


def test_a_session_is_declared_where_it_works(spec: dict[str, Any]) -> None:
    cookie = spec["components"]["securitySchemes"]["SessionCookie"]
    assert (cookie["in"], cookie["name"]) == ("cookie", "allim_session")
    key_or_session = [{"APIKeyHeader": []}, {"SessionCookie": []}]
    assert spec["paths"]["/v1/alerts"]["post"]["security"] == key_or_session
    assert spec["paths"]["/v1/session"]["get"]["security"] == key_or_session
    # signing out ends a session: a key's caller has none
    assert spec["paths"]["/v1/session"]["delete"]["security"] == [{"SessionCookie": []}]
