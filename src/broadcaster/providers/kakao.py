"""The `kakao` adapter: the KakaoTalk business-message dealer API (docs/provider-api.md)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from broadcaster.errors import AlreadyAcceptedError, PermanentProviderError, RetryableProviderError
from broadcaster.providers.answers import document, results
from broadcaster.providers.base import BatchResult, OutgoingBatch, quotas_of, unbound

logger = logging.getLogger(__name__)

ALREADY_ACCEPTED = -1005
LINK_VARIABLE = "#{link}"
JSON_HEADERS = {"Content-Type": "application/json"}


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
            "recipientList": [
                {
                    "recipientNo": number,
                    "recipientGroupingKey": str(subscriber_id),
                    "templateParameter": {"link": link},
                }
                for subscriber_id, number, link in batch.recipients
            ],
        }
        if batch.message_type == "ALIMTALK":
            payload["templateCode"] = self._options.template_code
        return orjson.dumps(payload)

    async def send(self, batch: OutgoingBatch) -> BatchResult:
        """Post one batch; per-recipient codes in the result, request-level answers raised."""
        headers = {**JSON_HEADERS, **self._auth, "X-Idempotency-Key": batch.batch_id}
        try:
            response = unbound(
                await self._client.post(self._send_url, content=self.body(batch), headers=headers)
            )
        except httpx.TransportError as exc:
            raise RetryableProviderError(
                f"Batch '{batch.batch_id}' request failed: {exc!r}"
            ) from exc
        answer = document(response, batch.batch_id)
        header = answer.get("header") or {}
        code = header.get("resultCode")
        if code == ALREADY_ACCEPTED:
            raise AlreadyAcceptedError(f"Batch '{batch.batch_id}' was already accepted.")
        if code != 0:
            raise PermanentProviderError(
                f"Batch '{batch.batch_id}' refused: {code} {header.get('resultMessage')}",
                response.status_code,
            )
        message = answer.get("message") or {}
        return results(batch.batch_id, message.get("sendResults") or [], quotas_of(response))

    async def lookup(self, batch_id: str) -> BatchResult | None:
        """The results of `batch_id`, or None when the dealer has no request with that key."""
        params = {"senderGroupingKey": batch_id, "pageNum": "1", "pageSize": "1000"}
        try:
            response = unbound(
                await self._client.get(self._lookup_url, params=params, headers=self._auth)
            )
        except httpx.TransportError as exc:
            raise RetryableProviderError(f"Look-up of '{batch_id}' failed: {exc!r}") from exc
        found = document(response, batch_id).get("messageSearchResultResponse") or {}
        messages = found.get("messages") or []
        if not messages:
            return None
        return results(batch_id, messages)
