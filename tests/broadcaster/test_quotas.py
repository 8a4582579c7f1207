"""Reading the quotas a dealer advertises in the IETF RateLimit header fields."""

from __future__ import annotations

import httpx
import pytest

from broadcaster.providers.base import quotas_of
from broadcaster.quotas import FieldError, Quota, advertised, parse_list


def test_a_list_of_items_with_parameters() -> None:
    assert parse_list('"messages";q=5000;w=1;qu="messages", day;q=1.5;x=?1;flag') == [
        ("messages", {"q": 5000.0, "w": 1.0, "qu": "messages"}),
        ("day", {"q": 1.5, "x": True, "flag": True}),
    ]
    # a string may hold the separators, escaped quotes too
    assert parse_list(r'"a, \"b\";c";q=1') == [('a, "b";c', {"q": 1.0})]


@pytest.mark.parametrize(
    "value", ['"a";q=1,', '"a" "b"', '"a";=1', '"unterminated', '"a";q=1;;w=2', ",", "@"]
)
def test_malformed_lists_are_refused(value: str) -> None:
    with pytest.raises(FieldError):
        parse_list(value)


def test_policies_become_rates_per_second_with_what_is_left() -> None:
    policies = ['"messages";q=5000;w=1;qu="messages", "requests";q=600;w=60']
    states = ['"messages";r=4000;t=1, "other";r=1']
    assert advertised(policies, states) == (
        Quota("messages", "messages", 5000.0, remaining=4000.0, reset=1.0),
        Quota("requests", "requests", 10.0),
    )


def test_policies_allim_cannot_budget_are_left_aside() -> None:
    policies = [
        '"bytes";q=100000;w=1;qu="content-bytes"',  # a unit allim does not count
        '"no-window";q=5',  # no window: no rate
        '"zero";q=5;w=0',
        '"negative";q=-5;w=1',
        '"token";q=?1;w=1',
        '"ok";q=5;w=2;qu="request"',
    ]
    assert advertised(policies, []) == (Quota("ok", "requests", 2.5),)


def test_unreadable_or_missing_fields_advertise_nothing() -> None:
    assert advertised([], ['"a";r=1']) == ()
    assert advertised(['"a";q=5;w=1,,'], []) == ()
    assert advertised(['"a";q=5;w=1'], ['"a";r=(1 2)']) == ()


def test_quotas_of_a_response_read_every_field_line() -> None:
    headers = [
        ("RateLimit-Policy", '"messages";q=5000;w=1;qu="messages"'),
        ("RateLimit-Policy", '"requests";q=20;w=1'),
        ("RateLimit", '"requests";r=0;t=1'),
    ]
    quotas = quotas_of(httpx.Response(200, headers=headers))
    assert quotas == (
        Quota("messages", "messages", 5000.0),
        Quota("requests", "requests", 20.0, remaining=0.0, reset=1.0),
    )
    assert quotas_of(httpx.Response(200)) == ()
