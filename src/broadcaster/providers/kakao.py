"""The `kakao` adapter: the KakaoTalk business-message dealer API (docs/provider-api.md)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from broadcaster.providers.answers import results
from broadcaster.providers.base import LINK_VARIABLE, BatchResult, OutgoingBatch, quotas_of
from broadcaster.providers.exchange import JSON_HEADERS, look_up, post_batch, recipient_list

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class KakaoOptions:
    """Where the dealer is and who we are to it."""

    base_url: str
    send_path: str
    lookup_path: str
    appkey: str
    secret: str
    sender_key: str
    template_code: str
    default_button: str


class KakaoProvider:
    """Sends batches to the dealer through one shared `httpx.AsyncClient`."""

    def __init__(self, client: httpx.AsyncClient, options: KakaoOptions) -> None:
        self._client = client
        self._options = options
        base = options.base_url.rstrip("/")
        self._send_url = base + options.send_path.format(appkey=options.appkey)
        self._lookup_url = base + options.lookup_path.format(appkey=options.appkey)
        self._auth = {"X-Secret-Key": options.secret}

    def body(self, batch: OutgoingBatch) -> bytes:
        """The JSON request body of one batch."""
        buttons = [{"name": b.name, "linkMo": b.link} for b in batch.buttons]
        if not any(LINK_VARIABLE in b["linkMo"] for b in buttons) and len(buttons) < 5:
            buttons.append({"name": self._options.default_button, "linkMo": LINK_VARIABLE})
        payload: dict[str, Any] = {
            "senderKey": self._options.sender_key,
            "messageType": batch.message_type,
            "title": batch.title,
            "content": batch.body,
            "buttons": buttons,
            "isAd": batch.message_type == "BRAND",
            "senderGroupingKey": batch.batch_id,
            "recipientList": recipient_list(batch),
        }
        if batch.message_type == "ALIMTALK":
            payload["templateCode"] = self._options.template_code
        return orjson.dumps(payload)

    async def send(self, batch: OutgoingBatch) -> BatchResult:
        """Post one batch; per-recipient codes in the result, request-level answers raised."""
        headers = {**JSON_HEADERS, **self._auth, "X-Idempotency-Key": batch.batch_id}
        answer, response = await post_batch(
            self._client, self._send_url, self.body(batch), headers, batch.batch_id
        )
        message = answer.get("message") or {}
        return results(batch.batch_id, message.get("sendResults") or [], quotas_of(response))

    async def lookup(self, batch_id: str) -> BatchResult | None:
        """The results of `batch_id`, or None when the dealer has no request with that key."""
        found = await look_up(self._client, self._lookup_url, self._auth, batch_id)
        messages = (found.get("messageSearchResultResponse") or {}).get("messages") or []
        if not messages:
            return None
        return results(batch_id, messages)
