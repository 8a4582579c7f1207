"""The interface every provider adapter implements, and the values that cross it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal, Protocol

from common.messages import Button, Category

# per-recipient result codes of the provider contract (PROVIDER_API.md)
DELIVERED = 1000
INACTIVE = 3018
NOT_KAKAO_USER = 3019
BRAND_QUIET_HOURS = 3022
TEMPORARY_FAILURE = 5000
PERMANENT_CODES = frozenset({INACTIVE, NOT_KAKAO_USER})


# Recipient and RecipientResult are made a thousand times per batch: plain slotted classes,
# since a frozen dataclass's __init__ costs three times as much (object.__setattr__ per field)


@dataclass(slots=True)
class Recipient:
    """One recipient of a batch, with the tracked link rendered for them."""

    subscriber_id: int
    recipient_no: str
    link: str


@dataclass(frozen=True)
class OutgoingBatch:
    """One provider request; `batch_id` is its idempotency key and grouping key."""

    batch_id: str
    alert_id: uuid.UUID
    category: Category
    message_type: Literal["ALIMTALK", "BRAND"]
    title: str
    body: str
    buttons: tuple[Button, ...]
    recipients: tuple[Recipient, ...]


@dataclass(slots=True)
class RecipientResult:
    """What the provider said about one recipient."""

    subscriber_id: int
    recipient_no: str
    result_code: int
    message: str


@dataclass(frozen=True)
class BatchResult:
    """The provider's per-recipient answer to one batch."""

    batch_id: str
    results: tuple[RecipientResult, ...]


class Provider(Protocol):
    """A provider adapter; errors are `broadcaster.errors.ProviderError` subclasses."""

    async def send(self, batch: OutgoingBatch) -> BatchResult:
        """Send one batch; raise `AlreadyAcceptedError` when the key was already used."""
        ...

    async def lookup(self, batch_id: str) -> BatchResult | None:
        """The results of a batch sent before, or None when the provider never accepted it."""
        ...
