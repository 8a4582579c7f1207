"""Reading a dealer's HTTP answer, the same for every dealer contract (docs/provider-api.md):
the status mapped to `broadcaster.errors`, the JSON document, and its per-recipient results.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson

from broadcaster.backoff import parse_retry_after
from broadcaster.errors import PermanentProviderError, RetryableProviderError, ThrottledError
from broadcaster.providers.base import DELIVERED, BatchResult, quotas_of
from broadcaster.quotas import Quota


def document(response: httpx.Response, batch_id: str) -> dict[str, Any]:
    """The JSON object of a 200 answer; 429, 5xx and a body that is not one are retryable,
    any other status a permanent refusal."""
    status = response.status_code
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise ThrottledError(
            f"Batch '{batch_id}' throttled (429).", retry_after, quotas_of(response)
        )
    if status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise RetryableProviderError(f"Batch '{batch_id}' got HTTP {status}.", retry_after)
    if status != 200:
        raise PermanentProviderError(
            f"Batch '{batch_id}' refused with HTTP {status}: {refusal_message(response)}", status
        )
    try:
        found = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise RetryableProviderError(
            f"Batch '{batch_id}' got a body that is not JSON: {exc}"
        ) from exc
    if not isinstance(found, dict):
        raise RetryableProviderError(f"Batch '{batch_id}' got a body that is not an object.")
    return found


def results(
    batch_id: str,
    entries: list[dict[str, Any]],
    quotas: tuple[Quota, ...] = (),
    code: Callable[[int], int] = int,
) -> BatchResult:
    """The per-recipient results, each dealer code read through `code` into allim's;
    retryable when they cannot be read (nothing is settled)."""
    try:
        subscriber_ids = [int(e["recipientGroupingKey"]) for e in entries]
        codes = [code(int(e["resultCode"])) for e in entries]
        messages = {
            subscriber_id: str(e.get("resultMessage", ""))
            for subscriber_id, result, e in zip(subscriber_ids, codes, entries, strict=True)
            if result != DELIVERED
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RetryableProviderError(
            f"Batch '{batch_id}' got per-recipient results that cannot be read: {exc!r}"
        ) from exc
    return BatchResult(batch_id, subscriber_ids, codes, messages, quotas)


def refusal_message(response: httpx.Response) -> str:
    """What a refusal's `header.resultMessage` says, or the start of its body."""
    try:
        found = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:200]
    if isinstance(found, dict):
        header = found.get("header")
        if isinstance(header, dict):
            return str(header.get("resultMessage", ""))
    return response.text[:200]
