"""Request bodies of the gateway tests: a valid alert, with some fields changed."""

from __future__ import annotations

from typing import Any, Protocol


def alert_body(**changes: Any) -> dict[str, Any]:
    """A valid alert body with `changes` applied."""
    body: dict[str, Any] = {
        "title": "태풍 링링 대비 안내",
        "body": "강풍에 대비해 외출을 삼가 주세요.",
        "category": "emergency",
        "buttons": [{"name": "대피소", "link": "https://example.org/shelters"}],
        "audience": {"districts": ["장안구"], "tags": []},
    }
    body.update(changes)
    return body


class AlertJson(Protocol):
    """`alert_json(**changes)`: a valid alert body with some fields changed."""

    def __call__(self, **changes: Any) -> dict[str, Any]: ...
