"""The dead-letter headers both consumers (broadcaster, analytics) put on a parked record."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord

from common.kafka import MAX_DEAD_LETTER_REASON, dead_letter_headers


def _record(
    topic: str, partition: int, offset: int, headers: list[tuple[str, bytes]]
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, partition, offset, 0, 0, b"k", b"{}", None, 1, 2, headers)


def test_the_record_keeps_its_headers_and_says_where_it_came_from_and_why() -> None:
    record = _record("engagement", 2, 41, [("ce_id", b"e1")])

    assert dead_letter_headers(record, "not JSON: line 1") == [
        ("ce_id", b"e1"),
        ("dlq_topic", b"engagement"),
        ("dlq_partition", b"2"),
        ("dlq_offset", b"41"),
        ("dlq_reason", b"not JSON: line 1"),
    ]


def test_a_long_reason_is_cut_to_the_limit() -> None:
    record = _record("alerts.requested", 0, 7, [])
    reason = "invalid AlertRequested: " + "x" * 5000

    headers = dict(dead_letter_headers(record, reason))

    assert len(headers["dlq_reason"]) == MAX_DEAD_LETTER_REASON == 1000
    assert headers["dlq_reason"] == reason[:1000].encode()
