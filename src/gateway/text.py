"""Which text PostgreSQL can store: neither NUL nor lone surrogates (UTF-8 cannot encode them)."""

from __future__ import annotations


def unstorable(value: str) -> str | None:
    """Why `value` cannot be stored as PostgreSQL text, or None when it can."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (no lone surrogates)"
    return None
