"""What the sandbox remembers of accepted batches: idempotency keys for a while, and the
per-recipient results by `senderGroupingKey` for look-up."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

from sandbox.clock import Clock


class IdempotencyKeys:
    """`X-Idempotency-Key`s of accepted batches, remembered `ttl` seconds on `clock`."""

    def __init__(self, ttl: float, clock: Clock) -> None:
        self._ttl = ttl
        self._clock = clock
        self._accepted: OrderedDict[str, float] = OrderedDict()

    def seen(self, key: str) -> bool:
        """Whether a batch with `key` was accepted less than `ttl` seconds ago."""
        self._forget_expired()
        accepted_at = self._accepted.get(key)
        return accepted_at is not None and self._clock.now() - accepted_at < self._ttl

    def remember(self, key: str) -> None:
        """A batch with `key` was accepted now."""
        self._accepted[key] = self._clock.now()
        self._accepted.move_to_end(key)

    def clear(self) -> None:
        """Forget every key."""
        self._accepted.clear()

    def _forget_expired(self) -> None:
        oldest = self._clock.now() - self._ttl
        accepted = self._accepted
        while accepted:
            key, accepted_at = next(iter(accepted.items()))
            if accepted_at > oldest:
                return
            del accepted[key]


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """The results of one accepted request, kept as the JSON of its `sendResults`."""

    request_id: str
    send_results: bytes
    count: int


class ResultStore:
    """Results of accepted requests by `senderGroupingKey`, in the order they were accepted."""

    def __init__(self) -> None:
        self._batches: dict[str, list[StoredBatch]] = {}

    def add(self, grouping_key: str, batch: StoredBatch) -> None:
        """Keep the results of one accepted request."""
        self._batches.setdefault(grouping_key, []).append(batch)

    def page(
        self, grouping_key: str, page_num: int, page_size: int
    ) -> tuple[list[dict[str, Any]], int]:
        """Page `page_num` (from 1) of `page_size` results, and the total number of results."""
        batches = self._batches.get(grouping_key, [])
        total = sum(b.count for b in batches)
        start = (page_num - 1) * page_size
        end = start + page_size
        entries: list[dict[str, Any]] = []
        offset = 0
        for batch in batches:
            if offset + batch.count > start and offset < end:
                results = orjson.loads(batch.send_results)
                for entry in results[max(0, start - offset) : end - offset]:
                    entry["requestId"] = batch.request_id
                    entry["senderGroupingKey"] = grouping_key
                    entries.append(entry)
            offset += batch.count
        return entries, total

    def clear(self) -> None:
        """Forget every result."""
        self._batches.clear()
