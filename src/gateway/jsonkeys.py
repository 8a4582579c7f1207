"""JSON objects that name a key twice: refused, rather than letting the last one win.

`{"category": "emergency", ..., "category": "public"}` is valid JSON (RFC 8259 says only
that names *should* be unique), and parsers keep the last value: an operator who pasted
two bodies together would send a public alert believing it an emergency one.
"""

from __future__ import annotations

import json
from typing import Any

Location = tuple[str | int, ...]


class _Object(dict[str, Any]):
    """A parsed JSON object that remembers the keys it held more than once."""

    repeated: list[str]


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    parsed = _Object(pairs)
    seen: set[str] = set()
    parsed.repeated = []
    for key, _ in pairs:
        if key in seen and key not in parsed.repeated:
            parsed.repeated.append(key)
        seen.add(key)
    return parsed


def repeated_keys(document: bytes) -> list[Location]:
    """Where `document` holds a key twice (`("buttons", 0, "name")`); [] when nowhere or when
    it is not JSON at all (the model's own parse reports that)."""
    found: list[Location] = []
    try:
        _walk(json.loads(document, object_pairs_hook=_object), (), found)
    except (ValueError, RecursionError):
        # not JSON, or nested past what Python parses: the model's parse answers that
        return []
    return found


def _walk(value: Any, where: Location, found: list[Location]) -> None:
    if isinstance(value, _Object):
        found.extend((*where, key) for key in value.repeated)
        for key, item in value.items():
            _walk(item, (*where, key), found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, (*where, index), found)
