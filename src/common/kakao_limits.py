"""The dealer's field limits on a send request (docs/provider-api.md, "Send").

One place for the numbers: the sandbox refuses a request past them, the gateway refuses an
alert that could not be sent within them, and the preview counts an alert against them.
"""

from __future__ import annotations

from typing import Literal

MessageType = Literal["ALIMTALK", "BRAND"]

MAX_TITLE = 50
MAX_CONTENT = 1300
MAX_BUTTONS = 5
MAX_BUTTON_NAME = 14
MAX_LINK = 500


def message_type(category: str) -> MessageType:
    """The `messageType` an alert of `category` goes out as: `BRAND` (advertising) for a
    promotional alert, `ALIMTALK` (informational) otherwise."""
    return "BRAND" if category == "promotional" else "ALIMTALK"
