"""One HTTP exchange with a dealer, the same for the KakaoTalk and the SMS/LMS contract
(docs/provider-api.md): a batch posted under its grouping key, and a batch looked up by it.

Both contracts answer a `header` with `resultCode` 0 for a request they took, -1005 for a
grouping key they took before; what the answer's status says is `answers.document`'s.
"""

from __future__ import annotations

from typing import Any

import httpx

from broadcaster.errors import AlreadyAcceptedError, PermanentProviderError, RetryableProviderError
from broadcaster.providers.answers import document
from broadcaster.providers.base import OutgoingBatch, unbound

ALREADY_ACCEPTED = -1005
JSON_HEADERS = {"Content-Type": "application/json"}


def recipient_list(batch: OutgoingBatch) -> list[dict[str, Any]]:
    """The batch's recipients as both contracts list them, each link a template parameter."""
    return [
        {
            "recipientNo": number,
            "recipientGroupingKey": str(subscriber_id),
            "templateParameter": {"link": link},
        }
        for subscriber_id, number, link in batch.recipients
    ]


async def post_batch(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], batch_id: str
) -> tuple[dict[str, Any], httpx.Response]:
    """Post one batch: the answer's document and response once the dealer took it; a
    request it refused, took before or never answered raised as `broadcaster.errors`."""
    try:
        response = unbound(await client.post(url, content=body, headers=headers))
    except httpx.TransportError as exc:
        raise RetryableProviderError(f"Batch '{batch_id}' request failed: {exc!r}") from exc
    answer = document(response, batch_id)
    header = answer.get("header") or {}
    code = header.get("resultCode")
    if code == ALREADY_ACCEPTED:
        raise AlreadyAcceptedError(f"Batch '{batch_id}' was already accepted.")
    if code != 0:
        raise PermanentProviderError(
            f"Batch '{batch_id}' refused: {code} {header.get('resultMessage')}",
            response.status_code,
        )
    return answer, response


async def look_up(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], batch_id: str
) -> dict[str, Any]:
    """The dealer's document of the requests sent under `batch_id` (first page of 1,000)."""
    params = {"senderGroupingKey": batch_id, "pageNum": "1", "pageSize": "1000"}
    try:
        response = unbound(await client.get(url, params=params, headers=headers))
    except httpx.TransportError as exc:
        raise RetryableProviderError(f"Look-up of '{batch_id}' failed: {exc!r}") from exc
    return document(response, batch_id)
