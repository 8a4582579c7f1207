"""Hand-written checks of a send request against the provider contract's field limits.

A batch holds up to 1,000 recipients and the sandbox must take well over 100,000 recipients
a second, so the per-recipient checks are plain type and length tests, no model per
recipient. Every failure names the field at fault, e.g. `recipientList[3].recipientNo`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from common.kakao_limits import MAX_BUTTON_NAME, MAX_BUTTONS, MAX_CONTENT, MAX_LINK, MAX_TITLE
from sandbox.errors import InvalidRequest

MESSAGE_TYPES = frozenset({"ALIMTALK", "BRAND"})
MAX_GROUPING_KEY = 100
MAX_RECIPIENTS = 1000
MAX_RECIPIENT_NO = 20
MAX_IDEMPOTENCY_KEY = 64
BUTTON_LINKS = ("linkMo", "linkPc")
_VARIABLE = re.compile(r"#\{([^{}]+)\}")


@dataclass(frozen=True, slots=True)
class SendRequest:
    """A send request that passed every check."""

    message_type: str
    sender_grouping_key: str
    recipients: list[dict[str, Any]]

    @property
    def alert_id(self) -> str:
        """The alert the batch belongs to: the grouping key up to its first ':'."""
        return self.sender_grouping_key.split(":", 1)[0]


def check_idempotency_key(key: str | None) -> str | None:
    """The key when it is absent or within its limit; `InvalidRequest` otherwise."""
    if key is not None and (not key or len(key) > MAX_IDEMPOTENCY_KEY):
        raise InvalidRequest("X-Idempotency-Key", f"must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    return key


def _text(
    doc: dict[str, Any], name: str, limit: int, *, required: bool, where: str = ""
) -> str | None:
    """The string `doc[name]`, checked; errors name it `{where}{name}`."""
    value = doc.get(name)
    if value is None:
        if required:
            raise InvalidRequest(where + name, "is required")
        return None
    if type(value) is not str:
        raise InvalidRequest(where + name, "must be a string")
    if required and not value:
        raise InvalidRequest(where + name, "must not be empty")
    if len(value) > limit:
        raise InvalidRequest(where + name, f"is longer than {limit} characters")
    return value


def _buttons(doc: dict[str, Any]) -> list[str]:
    """Check the buttons; return their links."""
    buttons = doc.get("buttons")
    if buttons is None:
        return []
    if type(buttons) is not list:
        raise InvalidRequest("buttons", "must be a list")
    if len(buttons) > MAX_BUTTONS:
        raise InvalidRequest("buttons", f"holds more than {MAX_BUTTONS} buttons")
    links = []
    for i, button in enumerate(buttons):
        if type(button) is not dict:
            raise InvalidRequest(f"buttons[{i}]", "must be an object")
        where = f"buttons[{i}]."
        _text(button, "name", MAX_BUTTON_NAME, required=True, where=where)
        for key in BUTTON_LINKS:
            link = _text(button, key, MAX_LINK, required=False, where=where)
            if link is not None:
                links.append(link)
    return links


def parse_send_request(body: bytes) -> SendRequest:
    """The checked request in `body`; `InvalidRequest` naming the first field at fault."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("body", "is not valid JSON") from None
    if type(doc) is not dict:
        raise InvalidRequest("body", "must be a JSON object")
    _text(doc, "senderKey", MAX_GROUPING_KEY, required=True)
    message_type = doc.get("messageType")
    if message_type not in MESSAGE_TYPES:
        raise InvalidRequest("messageType", "must be ALIMTALK or BRAND")
    if message_type == "ALIMTALK":
        _text(doc, "templateCode", MAX_GROUPING_KEY, required=True)
    title = _text(doc, "title", MAX_TITLE, required=False) or ""
    content = _text(doc, "content", MAX_CONTENT, required=True) or ""
    links = _buttons(doc)
    if "isAd" in doc and type(doc["isAd"]) is not bool:
        raise InvalidRequest("isAd", "must be true or false")
    grouping_key = _text(doc, "senderGroupingKey", MAX_GROUPING_KEY, required=True) or ""
    recipients = doc.get("recipientList")
    if type(recipients) is not list or not recipients:
        raise InvalidRequest("recipientList", "must be a non-empty list")
    if len(recipients) > MAX_RECIPIENTS:
        raise InvalidRequest("recipientList", f"holds more than {MAX_RECIPIENTS} recipients")
    link_variables = {v for link in links for v in _VARIABLE.findall(link)}
    variables = [
        (name, MAX_LINK if name in link_variables else MAX_CONTENT)
        for name in sorted(set(_VARIABLE.findall(title + content)) | link_variables)
    ]
    _check_recipients(recipients, variables)
    return SendRequest(message_type, grouping_key, recipients)


def _check_recipients(recipients: list[Any], variables: list[tuple[str, int]]) -> None:
    for i, recipient in enumerate(recipients):
        if type(recipient) is not dict:
            raise InvalidRequest(f"recipientList[{i}]", "must be an object")
        number = recipient.get("recipientNo")
        if type(number) is not str or not number or len(number) > MAX_RECIPIENT_NO:
            raise InvalidRequest(
                f"recipientList[{i}].recipientNo",
                f"must be a string of 1 to {MAX_RECIPIENT_NO} characters",
            )
        key = recipient.get("recipientGroupingKey")
        if key is not None and (type(key) is not str or len(key) > MAX_GROUPING_KEY):
            raise InvalidRequest(
                f"recipientList[{i}].recipientGroupingKey",
                f"must be a string of at most {MAX_GROUPING_KEY} characters",
            )
        parameters = recipient.get("templateParameter")
        if parameters is None:
            if variables:
                raise InvalidRequest(
                    f"recipientList[{i}].templateParameter",
                    f"is missing; the message uses #{{{variables[0][0]}}}",
                )
            continue
        if type(parameters) is not dict:
            raise InvalidRequest(f"recipientList[{i}].templateParameter", "must be an object")
        for name, limit in variables:
            value = parameters.get(name)
            if type(value) is not str:
                raise InvalidRequest(
                    f"recipientList[{i}].templateParameter.{name}",
                    f"must be a string; the message uses #{{{name}}}",
                )
            if len(value) > limit:
                raise InvalidRequest(
                    f"recipientList[{i}].templateParameter.{name}",
                    f"is longer than {limit} characters",
                )
