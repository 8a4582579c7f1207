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


def _delivery(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "alert_id": str(ALERT),
        "batch_id": f"{ALERT}:0:0",
        "shard_no": 0,
        "seq": 0,
        "category": "public",
        "delivered": 2,
        "failed": 1,
        "failed_by_reason": {"3019": 1},
        "subscriber_ids": [5, 6, 9],
        "result_codes": [1000, 3019, 1000],
    }
    data.update(changes)
    return data


def test_a_delivery_pairs_each_recipient_with_its_code() -> None:
    decoded = decode([_record(topics.DELIVERIES, events.DELIVERY_BATCH, _delivery())])
    [delivery] = decoded.deliveries
    pairs = dict(zip(delivery.data.subscriber_ids, delivery.data.result_codes, strict=True))
    assert pairs == {5: 1000, 6: 3019, 9: 1000}
    assert not decoded.poison


def test_a_delivery_whose_outcome_lists_do_not_pair_up_is_poison() -> None:
    unpaired = _delivery(result_codes=[1000, 3019])
    decoded = decode([_record(topics.DELIVERIES, events.DELIVERY_BATCH, unpaired)])
    [poison] = decoded.poison
    assert "subscriber_ids has 3 entries and result_codes 2" in poison.reason
    assert not decoded.deliveries and not decoded.event_ids()
