"""Opaque page cursors of the gateway's lists: a few strings, base64url-encoded.

A cursor the API did not give out is a 422 naming the `cursor` query field, like any
other invalid field.
"""

from __future__ import annotations

import base64
import binascii

from fastapi.exceptions import RequestValidationError

SEPARATOR = "|"


def encode(*parts: str) -> str:
    """The cursor that carries `parts` (none may contain the separator)."""
    raw = SEPARATOR.join(parts).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, count: int) -> list[str]:
    """The `count` parts of `cursor`; `invalid(cursor)` raised when it does not hold them."""
    try:
        parts = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise invalid(cursor) from exc
    split = parts.split(SEPARATOR)
    if len(split) != count:
        raise invalid(cursor)
    return split


def invalid(cursor: str) -> RequestValidationError:
    """The 422 error of a cursor this API did not give out."""
    return RequestValidationError(
        [
            {
                "type": "value_error",
                "loc": ("query", "cursor"),
                "msg": "Not a cursor this API gave out.",
                "input": cursor,
            }
        ]
    )
