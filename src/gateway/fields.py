"""The rules request fields share, checked on input and stated in the OpenAPI document.

Text that PostgreSQL can store (neither NUL nor lone surrogates, which UTF-8 cannot encode),
text that is filled (not only white space) and visible (not only invisible characters),
integers as JSON Schema means them, and request bodies that refuse unknown fields. A client
generated from the document refuses what the gateway would.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema


def unstorable(value: str) -> str | None:
    """Why `value` cannot be stored as PostgreSQL text, or None when it can."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (no lone surrogates)"
    return None


# a JSON Schema pattern: no NUL (a lone surrogate cannot be written in a schema's pattern)
STORABLE_PATTERN = "^[^\\x00]*$"
# the white space `str.strip()` removes (none lies above U+3000), written as themselves: no
# escape to read differently in ECMA-262, Rust and Python regular expressions
_SPACES = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
# no NUL, and something besides white space
FILLED_PATTERN = f"^[^\\x00]*[^{_SPACES}\\x00][^\\x00]*$"


def _storable(value: str) -> str:
    reason = unstorable(value)
    if reason is not None:
        raise ValueError(reason[0].upper() + reason[1:] + ".")
    return value


def _filled(value: str) -> str:
    if not value.strip():
        raise ValueError("Must not be blank: only white space was given.")
    return _storable(value)


@dataclass(frozen=True)
class _Text:
    """Text PostgreSQL can store, and when `filled` not only white space: checked on input and
    stated in the OpenAPI document, so a client generated from it refuses what the gateway
    would."""

    filled: bool = False

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        check = _filled if self.filled else _storable
        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        # a pattern of its own (a link's) already leaves NUL out
        json_schema.setdefault("pattern", FILLED_PATTERN if self.filled else STORABLE_PATTERN)
        return json_schema


Storable = _Text()
# what a person names or explains: a name, a label, a reason
Filled = _Text(filled=True)


def _json_integer(value: Any) -> Any:
    # JSON Schema's integer is a number without a fraction, `5.0` too, which lax parsing
    # takes as it should; it also takes `"5"` and `true`, which the document refuses
    if isinstance(value, str | bytes | bool):
        raise ValueError("Must be a number, not text or a boolean.")
    return value


# an integer as the document's `integer` means it
JsonInteger = BeforeValidator(_json_integer)

# letters that render as nothing: Hangul fillers (a Korean keyboard types them) and the
# blank Braille pattern; the format (Cf), separator (Z*) and control (Cc) characters are
# invisible by category
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Cc", "Zs", "Zl", "Zp", "Mn", "Me"})


def _visible(value: str) -> str:
    # a text of only zero-width spaces, no-break spaces or fillers shows the recipient nothing
    if all(c in _BLANK_LETTERS or unicodedata.category(c) in _INVISIBLE_CATEGORIES for c in value):
        raise ValueError("Must contain a visible character, not only spaces or invisible ones.")
    return value


Visible = AfterValidator(_visible)


class Strict(BaseModel):
    """Request bodies refuse unknown fields, so a typo is an error rather than ignored."""

    model_config = ConfigDict(extra="forbid")
