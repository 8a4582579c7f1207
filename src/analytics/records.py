"""Kafka records decoded into the facts analytics counts: taps, delivered batches, lifecycle.

A record that is not a valid allim CloudEvent, or whose data does not fit its type, is
poison: it goes to the dead-letter topic and never stalls the group. Event types this
consumer does not count are skipped, so producers may add types without breaking it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from common import events, topics
from common.events import CloudEvent, EventError
from common.kafka import ConsumedRecord
from common.messages import AlertLifecycleData, DeliveryBatchData, TapData

# widths of the columns these values are stored in
MAX_EVENT_ID = 100
MAX_READER_ID = 64
MAX_SUBSCRIBER_ID = 2**63 - 1  # bigint

LIFECYCLE_TYPES = frozenset(
    {
        events.ALERT_STARTED,
        events.ALERT_PROGRESS,
        events.ALERT_COMPLETED,
        events.ALERT_CANCELLED,
        events.ALERT_FAILED,
    }
)
# the (topic, type) pairs that are counted; anything else on these topics is skipped
COUNTED_TYPES: dict[str, frozenset[str]] = {
    topics.ENGAGEMENT: frozenset({events.LINK_TAPPED}),
    topics.DELIVERIES: frozenset({events.DELIVERY_BATCH}),
    topics.ALERT_EVENTS: LIFECYCLE_TYPES,
}


@dataclass(slots=True)  # made per tap: not frozen, whose __init__ costs more
class Tap:
    """One tap on a tracked link: `reader_id` opened the link sent to `subscriber_id`."""

    event_id: str
    alert_id: uuid.UUID
    subscriber_id: int
    reader_id: str
    tapped_at: datetime


@dataclass(frozen=True)
class Delivery:
    """The settled outcome of one provider batch."""

    event_id: str
    time: datetime
    data: DeliveryBatchData


@dataclass(frozen=True)
class Lifecycle:
    """A change in an alert's broadcast: started, progress, completed, cancelled, failed."""

    event_id: str
    type: str
    time: datetime
    data: AlertLifecycleData


@dataclass(frozen=True)
class Poison:
    """A record that cannot be counted, and why."""

    record: ConsumedRecord
    reason: str


@dataclass
class Decoded:
    """The countable facts of one poll, in log order, each event id once."""

    taps: list[Tap] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    lifecycle: list[Lifecycle] = field(default_factory=list)
    poison: list[Poison] = field(default_factory=list)
    skipped: int = 0
    repeated: int = 0  # records whose event id appeared earlier in the same poll
    seen: set[str] = field(default_factory=set, repr=False)  # event ids counted so far

    def event_ids(self) -> list[str]:
        """Ids of every countable event."""
        return [
            *(t.event_id for t in self.taps),
            *(d.event_id for d in self.deliveries),
            *(e.event_id for e in self.lifecycle),
        ]


def decode(records: Iterable[ConsumedRecord], into: Decoded | None = None) -> Decoded:
    """Sort the records of one poll into facts, poison and skipped types.

    A poll may be decoded in slices: each slice goes `into` what the ones before gave.
    """
    decoded = Decoded() if into is None else into
    seen = decoded.seen
    for record in records:
        try:
            event = CloudEvent.from_record(record.headers, record.value)
        except EventError as exc:
            decoded.poison.append(Poison(record, str(exc)))
            continue
        if event.type not in COUNTED_TYPES.get(record.topic, frozenset()):
            decoded.skipped += 1
            continue
        if len(event.id) > MAX_EVENT_ID or "\x00" in event.id:
            decoded.poison.append(
                Poison(
                    record, f"CloudEvent id is longer than {MAX_EVENT_ID} characters or holds NUL."
                )
            )
            continue
        if event.id in seen:
            decoded.repeated += 1
            continue
        try:
            _add(decoded, event)
        except ValidationError as exc:
            decoded.poison.append(
                Poison(record, f"Data of '{event.type}' is invalid: {_errors(exc)}")
            )
            continue
        except ValueError as exc:
            decoded.poison.append(Poison(record, str(exc)))
            continue
        seen.add(event.id)
    return decoded


def _add(decoded: Decoded, event: CloudEvent) -> None:
    if event.type == events.LINK_TAPPED:
        tap = TapData.model_validate(event.data)
        if not 0 <= tap.subscriber_id <= MAX_SUBSCRIBER_ID:
            raise ValueError(f"Tap subscriber_id {tap.subscriber_id} is out of range.")
        if not tap.reader_id or len(tap.reader_id) > MAX_READER_ID or "\x00" in tap.reader_id:
            raise ValueError(
                f"Tap reader_id must be 1 to {MAX_READER_ID} characters long, without NUL."
            )
        if tap.tapped_at.tzinfo is None:
            raise ValueError("Tap tapped_at has no time zone.")
        decoded.taps.append(
            Tap(event.id, tap.alert_id, tap.subscriber_id, tap.reader_id, tap.tapped_at)
        )
    elif event.type == events.DELIVERY_BATCH:
        decoded.deliveries.append(
            Delivery(event.id, event.time, DeliveryBatchData.model_validate(event.data))
        )
    else:
        decoded.lifecycle.append(
            Lifecycle(
                event.id, event.type, event.time, AlertLifecycleData.model_validate(event.data)
            )
        )


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'data'}: {e['msg']}" for e in exc.errors()
    )
