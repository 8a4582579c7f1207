"""The `webhook` adapter: a generic JSON batch POST to any HTTP endpoint.

For systems other than the Kakao dealer (a city's own push service, a message bus bridge, a
test receiver). One request per batch:

    POST <url>
    Content-Type: application/json
    X-Idempotency-Key: <batch id>
    X-Allim-Timestamp: <unix seconds>                 (only when a secret is set)
    X-Allim-Signature: sha256=<hex>                   (only when a secret is set)

    {
      "batch_id": "<alert id>:<shard>:<seq>",
      "alert": {"id": "<alert uuid>", "category": "emergency" | "public" | "promotional"},
      "message": {
        "type": "ALIMTALK" | "BRAND",
        "title": "...",
        "body": "...",
        "buttons": [{"name": "...", "link": "..."}]
      },
      "recipients": [
        {"subscriber_id": 42, "recipient_no": "01012345678", "link": "https://.../r/<token>"}
      ]
    }

The signature is HMAC-SHA256 with the shared secret over `<timestamp>.` followed by the raw
body bytes, in lower-case hex: a receiver recomputes it, compares in constant time, and
refuses old timestamps so a captured request cannot be replayed later.

Answers: any 2xx means every recipient of the batch was taken (code 1000). 429 asks us to
slow down (`Retry-After` in seconds or as an HTTP date); `RateLimit-Policy` and `RateLimit`
fields on any answer set the send rate (`broadcaster.quotas`); 408, 5xx, timeouts and connection
errors are transient, and the same batch is sent again with the same idempotency key; any
other status is a permanent refusal. A webhook has no look-up: a batch whose fate is unknown
is sent again with the same `X-Idempotency-Key`, which receivers must deduplicate, answering
a key they already took with a 2xx as they did the first time (not 409: any status outside
2xx, 408, 429 and 5xx would record the batch's recipients as failed).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from broadcaster.backoff import parse_retry_after
from broadcaster.errors import PermanentProviderError, RetryableProviderError, ThrottledError
from broadcaster.providers.base import DELIVERED, BatchResult, OutgoingBatch, quotas_of, unbound

SIGNATURE_HEADER = "X-Allim-Signature"
TIMESTAMP_HEADER = "X-Allim-Timestamp"
IDEMPOTENCY_HEADER = "X-Idempotency-Key"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Allim-Signature` value of `body` sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookProvider:
    """Posts each batch as one JSON document to `url`, signed when `secret` is set."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        secret: str | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"Webhook URL '{url}' is not an http(s) URL.")
        if secret is not None and not secret.strip():
            raise ValueError("The webhook secret is empty; leave it unset to send unsigned.")
        self._client = client
        self._url = url
        self._secret = secret
        self._clock = clock

    def body(self, batch: OutgoingBatch) -> bytes:
        """The JSON request body of one batch (the shape in this module's docstring)."""
        payload: dict[str, Any] = {
            "batch_id": batch.batch_id,
            "alert": {"id": str(batch.alert_id), "category": batch.category},
            "message": {
                "type": batch.message_type,
                "title": batch.title,
                "body": batch.body,
                "buttons": [{"name": b.name, "link": b.link} for b in batch.buttons],
            },
            "recipients": [
                {"subscriber_id": subscriber_id, "recipient_no": number, "link": link}
                for subscriber_id, number, link in batch.recipients
            ],
        }
        return orjson.dumps(payload)

    def headers(self, batch_id: str, body: bytes) -> dict[str, str]:
        """The request headers of one batch: idempotency key and, with a secret, signature."""
        headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: batch_id}
        if self._secret is not None:
            timestamp = str(int(self._clock()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = signature(self._secret, timestamp, body)
        return headers

    async def send(self, batch: OutgoingBatch) -> BatchResult:
        """Post one batch; a 2xx answer delivers every recipient, other answers raise."""
        body = self.body(batch)
        try:
            response = unbound(
                await self._client.post(
                    self._url, content=body, headers=self.headers(batch.batch_id, body)
                )
            )
        except httpx.TransportError as exc:
            raise RetryableProviderError(
                f"Batch '{batch.batch_id}' webhook request failed: {exc!r}"
            ) from exc
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status == 429:
            raise ThrottledError(
                f"Batch '{batch.batch_id}' throttled by webhook (429).",
                retry_after,
                quotas_of(response),
            )
        if status == 408 or status >= 500:
            raise RetryableProviderError(
                f"Batch '{batch.batch_id}' got HTTP {status} from the webhook.", retry_after
            )
        if not 200 <= status < 300:
            raise PermanentProviderError(
                f"Batch '{batch.batch_id}' refused by the webhook with HTTP {status}: "
                f"{response.text[:200]}",
                status,
            )
        delivered = batch.recipients.subscriber_ids
        return BatchResult(
            batch.batch_id,
            list(delivered),
            [DELIVERED] * len(delivered),
            quotas=quotas_of(response),
        )

    async def lookup(self, batch_id: str) -> BatchResult | None:
        """Always None: a webhook cannot be asked, so the batch is sent again with its key."""
        return None
