"""Decoding polls: facts, poison, skipped types, ids repeated within a poll."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from analytics.records import decode
from common import events, topics
from common.events import CloudEvent

ALERT = uuid.uuid4()


@dataclass
class FakeRecord:
    topic: str
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    partition: int = 0
    offset: int = 0
    key: bytes | None = None


def _record(
    topic: str, type_: str, data: dict[str, object], event_id: str | None = None
) -> FakeRecord:
    event = CloudEvent(type=type_, source="/test", data=data, id=event_id or str(uuid.uuid4()))
    return FakeRecord(topic, event.value(), event.headers())


def _tap(reader: str = "r1", **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "alert_id": str(ALERT),
        "subscriber_id": 7,
        "reader_id": reader,
        "tapped_at": datetime.now(UTC).isoformat(),
    }
    data.update(changes)
    return data


def test_taps_deliveries_and_lifecycle_are_sorted_in_log_order() -> None:
    decoded = decode(
        [
            _record(topics.ENGAGEMENT, events.LINK_TAPPED, _tap("a")),
            _record(topics.ENGAGEMENT, events.LINK_TAPPED, _tap("b")),
            _record(
                topics.ALERT_EVENTS,
                events.ALERT_STARTED,
                {
                    "alert_id": str(ALERT),
                    "status": "sending",
                    "category": "public",
                    "targeted": 10,
                    "delivered": 0,
                    "failed": 0,
                    "pending": 10,
                },
            ),
        ]
    )
    assert [t.reader_id for t in decoded.taps] == ["a", "b"]
    assert decoded.lifecycle[0].data.targeted == 10
    assert len(decoded.event_ids()) == 3
    assert not decoded.poison


def test_a_repeated_id_in_one_poll_counts_once() -> None:
    tap = _record(topics.ENGAGEMENT, events.LINK_TAPPED, _tap(), event_id="same")
    decoded = decode([tap, tap])
    assert decoded.event_ids() == ["same"]
    assert decoded.repeated == 1


def test_types_analytics_does_not_count_are_skipped() -> None:
    decoded = decode([_record(topics.ALERT_EVENTS, events.ALERT_REQUESTED, {"any": 1})])
    assert decoded.skipped == 1
    assert not decoded.poison and not decoded.event_ids()


def test_poison_is_kept_with_its_reason() -> None:
    bad = [
        FakeRecord(topics.ENGAGEMENT, b"{}", []),
        _record(topics.ENGAGEMENT, events.LINK_TAPPED, _tap(subscriber_id="seven")),
        _record(topics.ENGAGEMENT, events.LINK_TAPPED, _tap("x" * 65)),
        _record(topics.ENGAGEMENT, events.LINK_TAPPED, _tap(subscriber_id=2**63)),
        _record(topics.ENGAGEMENT, events.LINK_TAPPED, _tap("nul\x00")),
        _record(topics.ENGAGEMENT, events.LINK_TAPPED, _tap(tapped_at="2026-11-25T10:00:00")),
        _record(topics.ENGAGEMENT, events.LINK_TAPPED, _tap(), event_id="i" * 101),
    ]
    decoded = decode(bad)
    reasons = [p.reason for p in decoded.poison]
    assert len(reasons) == len(bad), reasons
    assert "header 'ce_specversion' is missing" in reasons[0]
    assert "subscriber_id" in reasons[1]
    assert "reader_id" in reasons[2]
    assert "subscriber_id" in reasons[3]
    assert "reader_id" in reasons[4]
    assert "time zone" in reasons[5]
    assert "longer than 100" in reasons[6]
    assert not decoded.event_ids()
