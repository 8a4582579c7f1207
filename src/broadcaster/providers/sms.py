"""The `sms` adapter: the SMS and LMS dealer API (docs/provider-api.md, "SMS and LMS").

A batch whose `message_type` is `SMS` goes to `/sender/sms`, an `LMS` to `/sender/mms` with
its title as the subject. The text holds allim's `#{link}`, which becomes the dealer's
`##link##`, replaced per recipient from its `templateParameter.link`. The dealer's codes
become allim's: 0 (accepted) is delivered, -9997 a temporary failure sent again later; every
other code is kept as the failure it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from broadcaster.providers.answers import results
from broadcaster.providers.base import (
    DELIVERED,
    LINK_VARIABLE,
    TEMPORARY_FAILURE,
    BatchResult,
    OutgoingBatch,
    quotas_of,
)
from broadcaster.providers.exchange import JSON_HEADERS, look_up, post_batch, recipient_list

if TYPE_CHECKING:
    from broadcaster.config import BroadcasterSettings

# the dealer's per-recipient codes that are not kept as they are
ACCEPTED = 0
CARRIER_TEMPORARY_FAILURE = -9997
DEALER_LINK = "##link##"
SEND_PATHS = {"SMS": "/sms", "LMS": "/mms"}


@dataclass(frozen=True)
class SmsOptions:
    """Where the SMS dealer is, who we are to it, and the number texts come from."""

    base_url: str
    appkey: str
    secret: str
    send_no: str


def allim_code(code: int) -> int:
    """allim's result code for the dealer's per-recipient `code`."""
    if code == ACCEPTED:
        return DELIVERED
    if code == CARRIER_TEMPORARY_FAILURE:
        return TEMPORARY_FAILURE
    return code


class SmsProvider:
    """Sends SMS and LMS batches to the dealer through one shared `httpx.AsyncClient`."""

    def __init__(self, client: httpx.AsyncClient, options: SmsOptions) -> None:
        self._client = client
        self._options = options
        self._base = f"{options.base_url.rstrip('/')}/sms/v3.0/appKeys/{options.appkey}/sender"
        # one look-up finds a batch whether it went as an SMS or as an LMS
        self._lookup_url = self._base + SEND_PATHS["SMS"]
        self._auth = {"X-Secret-Key": options.secret}

    def url(self, batch: OutgoingBatch) -> str:
        """Where `batch` is posted; `ValueError` for a batch that is not an SMS or LMS."""
        path = SEND_PATHS.get(batch.message_type)
        if path is None:
            raise ValueError(
                f"Batch '{batch.batch_id}' is a {batch.message_type} message, "
                "which the SMS dealer cannot send (SMS or LMS only)."
            )
        return self._base + path

    def body(self, batch: OutgoingBatch) -> bytes:
        """The JSON request body of one batch."""
        payload: dict[str, Any] = {
            "sendNo": self._options.send_no,
            "body": batch.body.replace(LINK_VARIABLE, DEALER_LINK),
            "senderGroupingKey": batch.batch_id,
            "recipientList": recipient_list(batch),
        }
        if batch.message_type == "LMS":
            payload["title"] = batch.title
        return orjson.dumps(payload)

    async def send(self, batch: OutgoingBatch) -> BatchResult:
        """Post one batch; per-recipient codes in the result, request-level answers raised."""
        headers = {**JSON_HEADERS, **self._auth}
        answer, response = await post_batch(
            self._client, self.url(batch), self.body(batch), headers, batch.batch_id
        )
        data = (answer.get("body") or {}).get("data") or {}
        return results(
            batch.batch_id, data.get("sendResultList") or [], quotas_of(response), allim_code
        )

    async def lookup(self, batch_id: str) -> BatchResult | None:
        """The results of `batch_id`, or None when the dealer has no request with that key."""
        found = await look_up(self._client, self._lookup_url, self._auth, batch_id)
        entries = (found.get("body") or {}).get("data") or []
        if not entries:
            return None
        return results(batch_id, entries, code=allim_code)


def make_sms_provider(
    settings: BroadcasterSettings, client: httpx.AsyncClient
) -> SmsProvider | None:
    """The SMS adapter the settings describe, or None when they name no SMS dealer."""
    if settings.broadcaster_sms_base_url is None:
        return None
    # the settings refuse an SMS dealer without an appkey, a secret or a sender number
    assert settings.broadcaster_sms_appkey is not None
    assert settings.broadcaster_sms_secret is not None
    assert settings.broadcaster_sms_send_no is not None
    return SmsProvider(
        client,
        SmsOptions(
            settings.broadcaster_sms_base_url,
            settings.broadcaster_sms_appkey,
            settings.broadcaster_sms_secret.get_secret_value(),
            settings.broadcaster_sms_send_no,
        ),
    )
