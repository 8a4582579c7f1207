"""The quotas a dealer advertises in the IETF `RateLimit-Policy` and `RateLimit` header fields.

draft-ietf-httpapi-ratelimit-headers: `RateLimit-Policy` is a Structured Fields List of
policies, each a String (or Token) naming it with parameters `q` (the quota), `w` (its window
in seconds) and `qu` (the unit: `request` when absent); `RateLimit` lists the same names with
`r` (what is left) and `t` (seconds until the quota is restored):

    RateLimit-Policy: "messages";q=5000;w=1;qu="messages", "requests";q=20;w=1
    RateLimit: "messages";r=4000;t=1

allim's senders budget messages (recipients) and requests, so they follow the policies in
unit `request` and in unit `messages`, which counts recipients as the dealer does (a unit
the draft leaves to the server); a policy in another unit or without a window is left aside.
A field that cannot be read is ignored: a dealer's malformed header never stops a send.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

logger = logging.getLogger(__name__)

Unit = Literal["messages", "requests"]
# the quota units (`qu`) allim's budgets are counted in
UNITS: dict[str, Unit] = {"request": "requests", "requests": "requests", "messages": "messages"}
DEFAULT_UNIT = "request"

# one Structured Fields bare item: a String, a Token, a Decimal or Integer, or a Boolean
_ITEM = re.compile(
    r'"(?P<string>(?:[^"\\]|\\.)*)"'
    r"|(?P<number>-?\d+(?:\.\d+)?)"
    r"|\?(?P<boolean>[01])"
    r"|(?P<token>[A-Za-z*][A-Za-z0-9:/!#$%&'*+\-.^_`|~]*)"
)
_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")

Bare = str | float | bool


class FieldError(ValueError):
    """A header field that is not the Structured Fields List the draft asks for."""


@dataclass(frozen=True)
class Quota:
    """One quota the dealer advertised: `per_second` of `unit`, and what is left of it."""

    name: str
    unit: Unit
    per_second: float
    remaining: float | None = None  # `r` of the `RateLimit` field, when it was sent
    reset: float | None = None  # `t`: seconds until the quota is restored


def parse_list(value: str) -> list[tuple[Bare, dict[str, Bare]]]:
    """The members of a Structured Fields List of Items: each value and its parameters."""
    members: list[tuple[Bare, dict[str, Bare]]] = []
    position, end = 0, len(value)

    def skip_spaces(at: int) -> int:
        while at < end and value[at] in " \t":
            at += 1
        return at

    def bare(at: int) -> tuple[Bare, int]:
        match = _ITEM.match(value, at)
        if match is None:
            raise FieldError(f"No item at character {at} of {value!r}.")
        if match["string"] is not None:
            return re.sub(r"\\(.)", r"\1", match["string"]), match.end()
        if match["number"] is not None:
            return float(match["number"]), match.end()
        if match["boolean"] is not None:
            return match["boolean"] == "1", match.end()
        return match["token"], match.end()

    position = skip_spaces(position)
    while position < end:
        item, position = bare(position)
        parameters: dict[str, Bare] = {}
        while position < end and value[position] == ";":
            position = skip_spaces(position + 1)
            key = _KEY.match(value, position)
            if key is None:
                raise FieldError(f"No parameter key at character {position} of {value!r}.")
            position = key.end()
            parameters[key.group()] = True
            if position < end and value[position] == "=":
                parameters[key.group()], position = bare(position + 1)
        members.append((item, parameters))
        position = skip_spaces(position)
        if position < end:
            if value[position] != ",":
                raise FieldError(f"Expected ',' at character {position} of {value!r}.")
            position = skip_spaces(position + 1)
            if position >= end:
                raise FieldError(f"A trailing ',' ends {value!r}.")
    return members


def _number(parameters: dict[str, Bare], key: str) -> float | None:
    value = parameters.get(key)
    if isinstance(value, bool) or not isinstance(value, float) or value < 0:
        return None
    return value


def advertised(policies: Iterable[str], states: Iterable[str]) -> tuple[Quota, ...]:
    """The quotas in the `RateLimit-Policy` fields `policies`, with what the `RateLimit`
    fields `states` say is left of them; () when there are none or they cannot be read."""
    policy_text = ", ".join(v for v in policies if v.strip())
    if not policy_text:
        return ()
    try:
        members = parse_list(policy_text)
        state_text = ", ".join(v for v in states if v.strip())
        left = {str(name): params for name, params in parse_list(state_text)} if state_text else {}
    except FieldError as exc:
        logger.debug("ignoring a RateLimit header field that cannot be read: %s", exc)
        return ()
    quotas = []
    for name, parameters in members:
        quota, window = _number(parameters, "q"), _number(parameters, "w")
        unit = UNITS.get(str(parameters.get("qu", DEFAULT_UNIT)))
        if quota is None or not window or unit is None:
            continue
        state = left.get(str(name), {})
        quotas.append(
            Quota(
                str(name),
                unit,
                quota / window,
                remaining=_number(state, "r"),
                reset=_number(state, "t"),
            )
        )
    return tuple(quotas)
