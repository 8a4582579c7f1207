"""CloudEvents 1.0 in Kafka binary mode: attributes in `ce_*` headers, data as JSON value.

Every event allim publishes on `deliveries`, `engagement`, `alerts.lifecycle` and
`alerts.stats` goes through `CloudEvent`; docs/events.md lists the types and their data.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"

# event types
DELIVERY_BATCH = "dev.allim.delivery.batch"
ALERT_REQUESTED = "dev.allim.alert.requested"
ALERT_STARTED = "dev.allim.alert.started"
ALERT_PROGRESS = "dev.allim.alert.progress"
ALERT_COMPLETED = "dev.allim.alert.completed"
ALERT_CANCELLED = "dev.allim.alert.cancelled"
ALERT_FAILED = "dev.allim.alert.failed"
ALERT_CONTROL = "dev.allim.alert.control"
LINK_TAPPED = "dev.allim.engagement.tap"
ALERT_STATS = "dev.allim.alert.stats"

Headers = list[tuple[str, bytes]]


def time_ordered_id() -> str:
    """A new UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits.

    Consumers record every event id they applied in a unique index; ids that grow with time
    land at its right edge instead of on a random page, which makes recording a poll of
    taps much cheaper than with random (version 4) ids.
    """
    millis = time.time_ns() // 1_000_000
    random = int.from_bytes(os.urandom(10), "big")
    value = (
        (millis & (1 << 48) - 1) << 80
        | 0x7 << 76  # version 7
        | (random >> 62 & 0xFFF) << 64  # rand_a: 12 bits
        | 0b10 << 62  # the RFC 9562 variant
        | random & (1 << 62) - 1  # rand_b: 62 bits
    )
    return str(uuid.UUID(int=value))


class EventError(ValueError):
    """A Kafka record that is not a valid allim CloudEvent."""


@dataclass(slots=True)  # made per consumed record: not frozen, whose __init__ costs more
class CloudEvent:
    """One CloudEvent; `id` names it: the same event published again keeps its id (consumers
    dedupe by it), and two different events never share one (docs/events.md)."""

    type: str
    source: str
    data: dict[str, Any]
    id: str = field(default_factory=time_ordered_id)
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = None

    def headers(self) -> Headers:
        """The `ce_*` Kafka headers of binary content mode."""
        headers = [
            ("ce_specversion", SPEC_VERSION.encode()),
            ("ce_id", self.id.encode()),
            ("ce_source", self.source.encode()),
            ("ce_type", self.type.encode()),
            ("ce_time", self.time.isoformat().encode()),
            ("content-type", CONTENT_TYPE.encode()),
        ]
        if self.subject is not None:
            headers.append(("ce_subject", self.subject.encode()))
        return headers

    def value(self) -> bytes:
        """The record value: the event data as JSON."""
        return orjson.dumps(self.data)

    @classmethod
    def from_record(
        cls, headers: Headers | tuple[tuple[str, bytes], ...], value: bytes | None
    ) -> CloudEvent:
        """Parse a consumed record; raise `EventError` saying what is wrong."""
        attrs = {k: v.decode("utf-8", "replace") for k, v in headers}
        for required in ("ce_specversion", "ce_id", "ce_source", "ce_type"):
            if not attrs.get(required):
                raise EventError(f"CloudEvent header '{required}' is missing.")
        if attrs["ce_specversion"] != SPEC_VERSION:
            raise EventError(f"CloudEvent specversion '{attrs['ce_specversion']}' is not 1.0.")
        if value is None:
            raise EventError("CloudEvent has no data.")
        try:
            data = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise EventError(f"CloudEvent data is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise EventError("CloudEvent data is not a JSON object.")
        try:
            time = (
                datetime.fromisoformat(attrs["ce_time"])
                if attrs.get("ce_time")
                else datetime.now(UTC)
            )
        except ValueError as exc:
            raise EventError(f"CloudEvent time '{attrs['ce_time']}' is not RFC 3339.") from exc
        return cls(
            type=attrs["ce_type"],
            source=attrs["ce_source"],
            data=data,
            id=attrs["ce_id"],
            time=time,
            subject=attrs.get("ce_subject"),
        )
