"""Field limits of a send request: each failure names its field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from sandbox.errors import InvalidRequest
from sandbox.validation import check_idempotency_key, parse_send_request

BatchBuilder = Callable[..., dict[str, Any]]


def _set(body: dict[str, Any], path: str, value: Any) -> None:
    """Set `a.b[2].c` in body; a value of ... deletes the key."""
    target: Any = body
    parts = path.replace("]", "").replace("[", ".").split(".")
    keys: list[Any] = [int(p) if p.isdigit() else p for p in parts]
    for key in keys[:-1]:
        target = target[key]
    if value is ...:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("senderKey", ..., "senderKey"),
        ("senderKey", 5, "senderKey"),
        ("messageType", "SMS", "messageType"),
        ("templateCode", ..., "templateCode"),
        ("title", "가" * 51, "title"),
        ("content", "x" * 1301, "content"),
        ("content", ..., "content"),
        ("buttons", [{"name": "b", "linkMo": "#{link}"}] * 6, "buttons"),
        ("buttons", {"name": "b"}, "buttons"),
        ("buttons[0].name", "가" * 15, "buttons[0].name"),
        ("buttons[0].linkMo", "h" * 501, "buttons[0].linkMo"),
        ("buttons[0].linkPc", 7, "buttons[0].linkPc"),
        ("isAd", "no", "isAd"),
        ("senderGroupingKey", "k" * 101, "senderGroupingKey"),
        ("senderGroupingKey", ..., "senderGroupingKey"),
        ("recipientList", [], "recipientList"),
        ("recipientList", "01012345678", "recipientList"),
        ("recipientList[1]", "01012345678", "recipientList[1]"),
        ("recipientList[1].recipientNo", ..., "recipientList[1].recipientNo"),
        ("recipientList[1].recipientNo", "0" * 21, "recipientList[1].recipientNo"),
        (
            "recipientList[1].recipientGroupingKey",
            "g" * 101,
            "recipientList[1].recipientGroupingKey",
        ),
        ("recipientList[1].templateParameter", ..., "recipientList[1].templateParameter"),
        ("recipientList[1].templateParameter", [], "recipientList[1].templateParameter"),
        (
            "recipientList[1].templateParameter.link",
            ...,
            "recipientList[1].templateParameter.link",
        ),
        (
            "recipientList[1].templateParameter.link",
            "h" * 501,
            "recipientList[1].templateParameter.link",
        ),
        (
            "recipientList[1].templateParameter.name",
            "n" * 1301,
            "recipientList[1].templateParameter.name",
        ),
    ],
)
def test_each_limit_is_enforced_and_named(
    make_batch: BatchBuilder, path: str, value: Any, field: str
) -> None:
    body = make_batch("a:0:1", ["01000000001", "01000000002"])
    _set(body, path, value)
    with pytest.raises(InvalidRequest) as caught:
        parse_send_request(orjson.dumps(body))
    assert caught.value.field == field
    assert f"'{field}'" in str(caught.value)


def test_a_full_batch_at_every_limit_is_valid(make_batch: BatchBuilder) -> None:
    body = make_batch("a" * 100, [f"{i:020d}" for i in range(1000)])
    body["title"] = "가" * 50
    body["content"] = "#{link}" + "x" * 1293
    body["buttons"] = [{"name": "가" * 14, "linkMo": "#{link}", "linkPc": "#{link}"}] * 5
    for recipient in body["recipientList"]:
        recipient["templateParameter"]["link"] = "h" * 500
        recipient["recipientGroupingKey"] = "g" * 100
    parsed = parse_send_request(orjson.dumps(body))
    assert len(parsed.recipients) == 1000
    assert parsed.message_type == "ALIMTALK"


def test_more_than_1000_recipients_is_refused(make_batch: BatchBuilder) -> None:
    body = make_batch("a:0:1", [f"{i:011d}" for i in range(1001)])
    with pytest.raises(InvalidRequest, match="recipientList"):
        parse_send_request(orjson.dumps(body))


def test_brand_needs_no_template_and_the_alert_is_the_key_up_to_the_first_colon(
    make_batch: BatchBuilder,
) -> None:
    body = make_batch("7d0c:3:12", ["01000000001"], message_type="BRAND")
    assert "templateCode" not in body
    parsed = parse_send_request(orjson.dumps(body))
    assert parsed.alert_id == "7d0c"
    assert parsed.sender_grouping_key == "7d0c:3:12"


@pytest.mark.parametrize("body", [b"", b"[1]", b'"text"', b"{"])
def test_a_body_that_is_not_a_json_object_is_refused(body: bytes) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_send_request(body)
    assert caught.value.field == "body"


def test_idempotency_key_is_at_most_64_characters() -> None:
    assert check_idempotency_key(None) is None
    assert check_idempotency_key("k" * 64) == "k" * 64
    for bad in ("", "k" * 65):
        with pytest.raises(InvalidRequest, match="X-Idempotency-Key"):
            check_idempotency_key(bad)
