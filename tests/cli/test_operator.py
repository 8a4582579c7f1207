"""`allim send` / `allim watch` helpers that need no gateway (the rest is in tests/gateway)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from cli.main import build_parser
from cli.operator import (
    CommandFailed,
    alert_from_flags,
    problem_text,
    request_from_file,
    sse_events,
)


def test_flags_make_the_json_body() -> None:
    args = build_parser().parse_args(
        ["send", "--title", "t", "--body", "b", "--category", "public",
         "--button", "지도=https://e.org/map?a=b", "--district", "팔달구", "--tag", "bus",
         "--expires-at", "2030-01-01T00:00:00+09:00"]
    )  # fmt: skip
    assert alert_from_flags(args) == {
        "title": "t",
        "body": "b",
        "category": "public",
        "buttons": [{"name": "지도", "link": "https://e.org/map?a=b"}],
        "audience": {"districts": ["팔달구"], "tags": ["bus"]},
        "expires_at": "2030-01-01T00:00:00+09:00",
    }
    everyone = build_parser().parse_args(
        ["send", "--title", "t", "--body", "b", "--category", "public", "--all"]
    )
    assert alert_from_flags(everyone)["audience"] == "all"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--body", "b", "--category", "public", "--all"], "--title"),
        (["--title", "t", "--body", "b", "--category", "public"], "--all"),
        (["--title", "t", "--body", "b", "--category", "public", "--all", "--button", "x"], "x"),
    ],
)
def test_incomplete_flags_say_what_is_missing(argv: list[str], message: str) -> None:
    with pytest.raises(CommandFailed, match=message):
        alert_from_flags(build_parser().parse_args(["send", *argv]))


def test_file_type_follows_the_suffix_or_content(tmp_path: Path) -> None:
    cap = tmp_path / "a.txt"
    cap.write_bytes(b'  <?xml version="1.0"?><alert/>')
    assert request_from_file(cap)[1] == "application/cap+xml"
    body = tmp_path / "a.json"
    body.write_bytes(b"{}")
    assert request_from_file(body)[1] == "application/json"
    with pytest.raises(CommandFailed, match="Cannot read"):
        request_from_file(tmp_path / "missing.json")


def test_sse_events_skip_comments_and_join_data_lines() -> None:
    lines = [
        ": ping",
        "",
        "event: progress",
        "id: 1",
        'data: {"a":',
        "data: 1}",
        "",
        "data: {}",
        "",
    ]
    assert list(sse_events(iter(lines))) == [("progress", {"a": 1}), ("message", {})]


def test_problem_text_lists_field_errors() -> None:
    response = httpx.Response(
        422,
        json={
            "title": "Invalid request",
            "detail": "These fields are invalid: title.",
            "errors": [{"field": "title", "message": "too long"}],
        },
    )
    assert problem_text(response) == (
        "422 Invalid request: These fields are invalid: title.\n  title: too long"
    )
    assert problem_text(httpx.Response(502, text="bad gateway")) == "502: bad gateway"
