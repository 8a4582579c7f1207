"""Hand-written checks of an SMS or LMS send request against the contract's limits
(docs/provider-api.md, "SMS and LMS").

The text is counted as the carriers count it, in CP949 bytes (a Hangul syllable is two), as
each recipient gets it: every `##name##` in the body replaced by the recipient's
`templateParameter.name`. Every failure names the field at fault, e.g.
`recipientList[3].templateParameter.link`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from common.sms_text import ENCODING, MAX_LMS_BYTES, MAX_LMS_SUBJECT_BYTES, MAX_SMS_BYTES
from sandbox.errors import InvalidRequest
from sandbox.validation import MAX_GROUPING_KEY, MAX_RECIPIENT_NO, MAX_RECIPIENTS

SmsKind = Literal["SMS", "LMS"]
MAX_BODY_BYTES: dict[SmsKind, int] = {"SMS": MAX_SMS_BYTES, "LMS": MAX_LMS_BYTES}
MAX_PARAMETER = 500
PLACEHOLDER = re.compile(r"##([A-Za-z0-9_]+)##")


@dataclass(frozen=True, slots=True)
class SmsRequest:
    """An SMS or LMS send request that passed every check."""

    kind: SmsKind
    sender_grouping_key: str
    recipients: list[dict[str, Any]]
    uses_link: bool  # the body holds ##link##: recipients see their templateParameter.link

    @property
    def alert_id(self) -> str:
        """The alert the batch belongs to: the grouping key up to its first ':'."""
        return self.sender_grouping_key.split(":", 1)[0]


def carrier_bytes(text: str, field: str) -> int:
    """`text`'s length in CP949 bytes; `InvalidRequest` on `field` when it cannot be encoded."""
    try:
        return len(text.encode(ENCODING))
    except UnicodeEncodeError as exc:
        raise InvalidRequest(
            field, f"holds {text[exc.start : exc.end]!r}, which CP949 (SMS) cannot encode"
        ) from None


def _string(doc: dict[str, Any], name: str, *, where: str = "") -> str | None:
    value = doc.get(name)
    if value is not None and type(value) is not str:
        raise InvalidRequest(where + name, "must be a string")
    return value


def parse_sms_request(body: bytes, kind: SmsKind, send_no: str) -> SmsRequest:
    """The checked request in `body`, sent as `kind` by the dealer whose registered sender
    number is `send_no`; `InvalidRequest` naming the first field at fault."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("body", "is not valid JSON") from None
    if type(doc) is not dict:
        raise InvalidRequest("body", "must be a JSON object")
    sender = _string(doc, "sendNo")
    if not sender:
        raise InvalidRequest("sendNo", "is required")
    if sender != send_no:
        raise InvalidRequest("sendNo", f"'{sender[:20]}' is not a registered sender number")
    title = _string(doc, "title")
    if kind == "SMS" and title is not None:
        raise InvalidRequest("title", "is not part of an SMS (an LMS has one)")
    if kind == "LMS":
        if not title:
            raise InvalidRequest("title", "is required for an LMS")
        if (size := carrier_bytes(title, "title")) > MAX_LMS_SUBJECT_BYTES:
            raise InvalidRequest("title", f"is {size} bytes; at most {MAX_LMS_SUBJECT_BYTES}")
    text = _string(doc, "body")
    if not text:
        raise InvalidRequest("body", "is required")
    variables = Counter(PLACEHOLDER.findall(text))
    fixed = carrier_bytes(PLACEHOLDER.sub("", text), "body")
    grouping_key = _string(doc, "senderGroupingKey")
    if not grouping_key or len(grouping_key) > MAX_GROUPING_KEY:
        raise InvalidRequest("senderGroupingKey", f"must be 1 to {MAX_GROUPING_KEY} characters")
    recipients = doc.get("recipientList")
    if type(recipients) is not list or not recipients:
        raise InvalidRequest("recipientList", "must be a non-empty list")
    if len(recipients) > MAX_RECIPIENTS:
        raise InvalidRequest("recipientList", f"holds more than {MAX_RECIPIENTS} recipients")
    _check_recipients(recipients, variables, fixed, MAX_BODY_BYTES[kind])
    return SmsRequest(kind, grouping_key, recipients, "link" in variables)


def _check_recipients(
    recipients: list[Any], variables: Counter[str], fixed: int, limit: int
) -> None:
    for i, recipient in enumerate(recipients):
        where = f"recipientList[{i}]"
        if type(recipient) is not dict:
            raise InvalidRequest(where, "must be an object")
        number = recipient.get("recipientNo")
        if type(number) is not str or not number or len(number) > MAX_RECIPIENT_NO:
            raise InvalidRequest(
                f"{where}.recipientNo", f"must be a string of 1 to {MAX_RECIPIENT_NO} characters"
            )
        key = recipient.get("recipientGroupingKey")
        if key is not None and (type(key) is not str or len(key) > MAX_GROUPING_KEY):
            raise InvalidRequest(
                f"{where}.recipientGroupingKey",
                f"must be a string of at most {MAX_GROUPING_KEY} characters",
            )
        if not variables:
            if fixed > limit:
                raise InvalidRequest("body", f"is {fixed} bytes; at most {limit} fit")
            continue
        parameters = recipient.get("templateParameter")
        if type(parameters) is not dict:
            raise InvalidRequest(
                f"{where}.templateParameter",
                f"must be an object; the body uses ##{next(iter(variables))}##",
            )
        size = fixed
        for name, count in variables.items():
            field = f"{where}.templateParameter.{name}"
            value = parameters.get(name)
            if type(value) is not str:
                raise InvalidRequest(field, f"must be a string; the body uses ##{name}##")
            if len(value) > MAX_PARAMETER:
                raise InvalidRequest(field, f"is longer than {MAX_PARAMETER} characters")
            size += count * carrier_bytes(value, field)
        if size > limit:
            raise InvalidRequest("body", f"is {size} bytes as {where} gets it; at most {limit} fit")
