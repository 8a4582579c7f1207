"""The interface every provider adapter implements, and the values that cross it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx

from broadcaster.quotas import Quota, advertised
from common.messages import Button, Category, Channel

# per-recipient result codes of the provider contract (docs/provider-api.md)
DELIVERED = 1000
INACTIVE = 3018
NOT_KAKAO_USER = 3019
UNCONFIRMED = 3005  # sent, receipt not confirmed: counted delivered, never sent again
BLOCKED = 3020  # the user blocked the channel's notifications
# where a message's text or button holds each recipient's tracked link
LINK_VARIABLE = "#{link}"
BRAND_QUIET_HOURS = 3022
# allim's own code: the dealer could not be reached for as long as the fallback waits
UNREACHABLE = 9001
TEMPORARY_FAILURE = 5000
PERMANENT_CODES = frozenset({INACTIVE, NOT_KAKAO_USER})


# a batch's recipients and their results are parallel lists, not an object per recipient: a
# thousand objects per batch cost more to make, keep and walk than the request itself


@dataclass(frozen=True, slots=True)
class Recipients:
    """The recipients of one batch in id order, each with the tracked link rendered for them."""

    subscriber_ids: list[int]
    recipient_nos: list[str]
    links: list[str]

    def __len__(self) -> int:
        return len(self.subscriber_ids)

    def __iter__(self) -> Iterator[tuple[int, str, str]]:
        """(subscriber id, recipient number, link) of each recipient, in id order."""
        return zip(self.subscriber_ids, self.recipient_nos, self.links, strict=True)

    @classmethod
    def render(
        cls, rows: Sequence[Sequence[Any]], link_base: str, sign: Callable[[int], str]
    ) -> Recipients:
        """From rows of (subscriber id, recipient number): each link is `link_base` + token."""
        subscriber_ids = [r[0] for r in rows]
        return cls(
            subscriber_ids, [r[1] for r in rows], [link_base + sign(i) for i in subscriber_ids]
        )


@dataclass(frozen=True)
class OutgoingBatch:
    """One provider request; `batch_id` is its idempotency key and grouping key."""

    batch_id: str
    alert_id: uuid.UUID
    category: Category
    message_type: Literal["ALIMTALK", "BRAND", "SMS", "LMS"]
    title: str
    body: str
    buttons: tuple[Button, ...]
    recipients: Recipients

    @property
    def channel(self) -> Channel:
        """`sms` for an SMS or LMS, `kakao` for the KakaoTalk messages."""
        return "sms" if self.message_type in ("SMS", "LMS") else "kakao"


@dataclass(frozen=True)
class BatchResult:
    """The provider's answer to one batch: a result code per recipient, in parallel lists.

    `messages` holds what the provider said of each recipient not delivered, by subscriber id.
    """

    batch_id: str
    subscriber_ids: list[int]
    result_codes: list[int]
    messages: dict[int, str] = field(default_factory=dict)
    quotas: tuple[Quota, ...] = ()  # what the answer's RateLimit headers advertised


def unbound(response: httpx.Response) -> httpx.Response:
    """The response, read, without the reference cycle the client leaves it in.

    `httpx` binds a response and its stream to each other, so a response and its request
    (both bodies of a batch) were freed only by the next garbage collection instead of as
    soon as the provider adapter is done with them. Its content stays.
    """
    response.stream = httpx.ByteStream(b"")
    return response


def quotas_of(response: httpx.Response) -> tuple[Quota, ...]:
    """The quotas a response's `RateLimit-Policy` and `RateLimit` fields advertise."""
    headers = response.headers
    return advertised(headers.get_list("RateLimit-Policy"), headers.get_list("RateLimit"))


class Provider(Protocol):
    """A provider adapter; errors are `broadcaster.errors.ProviderError` subclasses."""

    async def send(self, batch: OutgoingBatch) -> BatchResult:
        """Send one batch; raise `AlreadyAcceptedError` when the key was already used."""
        ...

    async def lookup(self, batch_id: str) -> BatchResult | None:
        """The results of a batch sent before, or None when the provider never accepted it."""
        ...
