"""What an alert says by SMS or LMS: its text, counted in bytes as the carriers count them.

Korean carriers count an SMS in CP949 bytes (an ASCII character is one byte, a Hangul
syllable two): an SMS holds at most 90 bytes, an LMS 2,000 with a subject of at most 40.
The text is the alert's title and body and its tracked link (`#{link}`, each recipient's own,
so reads through SMS count too). A promotional text carries `(광고)` first and the free
opt-out line last, as the law on advertising texts asks, and is held outside 08:00-21:00
(`ad_held_until`). A character CP949 cannot encode (an emoji, say) is refused or replaced
with `?`, as the alert says. The gateway refuses at creation what cannot be sent, and the
preview shows the text; the broadcaster sends what the gateway composed.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from common.tokens import TOKEN_LENGTH

SmsKind = Literal["SMS", "LMS"]
Unencodable = Literal["refuse", "replace"]
ENCODING = "cp949"
MAX_SMS_BYTES = 90
MAX_LMS_BYTES = 2000
MAX_LMS_SUBJECT_BYTES = 40
LINK = "#{link}"
# a tracked link is `{base}/r/{token}`: the caller counts the base, the token is this long
AD_MARK = "(광고)"
# advertising texts may be sent from 08:00 to 21:00 (Korean time) only
AD_HOURS = (time(8, 0), time(21, 0))
KST = ZoneInfo("Asia/Seoul")
REPLACEMENT = "?"


class SmsTextError(ValueError):
    """A text that cannot go by SMS or LMS; the message says why."""


@dataclass(frozen=True)
class SmsMessage:
    """What goes to the SMS dealer: its kind, the LMS subject, and the text with `#{link}`."""

    kind: SmsKind
    subject: str
    text: str
    length: int  # bytes as counted, with the link at its length
    limit: int


def byte_length(text: str) -> int:
    """`text`'s length in CP949 bytes; `SmsTextError` naming what cannot be encoded."""
    try:
        return len(text.encode(ENCODING))
    except UnicodeEncodeError:
        raise SmsTextError(
            f"The text has characters SMS cannot carry: {' '.join(unencodable(text))}."
        ) from None


def unencodable(text: str) -> list[str]:
    """The distinct characters of `text` CP949 cannot encode, in order of appearance."""
    found: dict[str, None] = {}
    for character in text:
        try:
            character.encode(ENCODING)
        except UnicodeEncodeError:
            found[character] = None
    return list(found)


def replaced(text: str) -> str:
    """`text` with each character CP949 cannot encode replaced by `?`."""
    return "".join(c if not unencodable(c) else REPLACEMENT for c in text)


def carried(text: str) -> str:
    """`text` as an SMS carries it: format characters (zero-width spaces, joiners, the byte
    order mark) dropped, every other blank (a no-break or ideographic space, the blank
    Braille pattern) an ordinary space; they show nothing, and CP949 has none of them."""
    kept = []
    for character in text:
        category = unicodedata.category(character)
        if category == "Cf":
            continue
        kept.append(" " if category == "Zs" or character == "\u2800" else character)
    return "".join(kept)


def compose(
    title: str,
    body: str,
    *,
    link_base: str,
    promotional: bool,
    opt_out_number: str,
    only_sms: bool = False,
    on_unencodable: Unencodable = "refuse",
) -> SmsMessage:
    """The SMS of an alert when its title, body and link fit 90 bytes, else its LMS (the
    title as its subject, cut to 40 bytes).

    `link_base` is what precedes the token in a tracked link (`{public base}/r/`), counted
    at its length with a token of `TOKEN_LENGTH`. `only_sms`: an SMS or nothing (an LMS
    costs more): a text over 90 bytes is an `SmsTextError`.
    """
    title, body = carried(title), carried(body)
    if on_unencodable == "replace":
        title, body = replaced(title), replaced(body)
    else:
        for part in (title, body):
            byte_length(part)  # raises, naming the characters
    mark = f"{AD_MARK} " if promotional else ""
    opt_out = f"\n무료수신거부 {opt_out_number}" if promotional else ""
    link_bytes = len(link_base) + TOKEN_LENGTH
    whole = f"{mark}{title}\n{body}\n{LINK}{opt_out}"
    whole_length = byte_length(whole.replace(LINK, "")) + link_bytes
    if whole_length <= MAX_SMS_BYTES:
        return SmsMessage("SMS", "", whole, whole_length, MAX_SMS_BYTES)
    if only_sms:
        raise SmsTextError(
            f"As an SMS the text is {whole_length} bytes with its link; at most "
            f"{MAX_SMS_BYTES} fit. Shorten it, or allow an LMS."
        )
    # an LMS: the title is its subject
    text = f"{mark}{body}\n{LINK}{opt_out}"
    length = byte_length(text.replace(LINK, "")) + link_bytes
    if length > MAX_LMS_BYTES:
        raise SmsTextError(
            f"As an LMS the text is {length} bytes with its link; at most {MAX_LMS_BYTES} fit."
        )
    subject = _cut(f"{mark}{title}", MAX_LMS_SUBJECT_BYTES)
    return SmsMessage("LMS", subject, text, length, MAX_LMS_BYTES)


def measured(kind: SmsKind, subject: str, text: str, link_base: str) -> SmsMessage:
    """A composed SMS or LMS with its length counted as `compose` counts it."""
    length = byte_length(text.replace(LINK, "")) + len(link_base) + TOKEN_LENGTH
    return SmsMessage(
        kind, subject, text, length, MAX_SMS_BYTES if kind == "SMS" else MAX_LMS_BYTES
    )


def _cut(text: str, limit: int) -> str:
    """`text` cut to at most `limit` bytes, whole characters only."""
    while byte_length(text) > limit:
        text = text[:-1]
    return text


def ad_held_until(now: datetime) -> datetime | None:
    """When an advertising text may go, if not now: the next 08:00 in Korea; else None."""
    local = now.astimezone(KST)
    opens, closes = AD_HOURS
    if opens <= local.time().replace(tzinfo=None) < closes:
        return None
    day = local.date() if local.time().replace(tzinfo=None) < opens else local.date() + timedelta(1)
    return datetime.combine(day, opens, tzinfo=KST)
