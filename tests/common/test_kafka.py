"""The dead-letter headers both consumers (broadcaster, analytics) put on a parked record."""

from __future__ import annotations

from dataclasses import dataclass

from common.kafka import MAX_DEAD_LETTER_REASON, dead_letter_headers


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


def test_the_record_keeps_its_headers_and_says_where_it_came_from_and_why() -> None:
    record = Record("engagement", 2, 41, b"k", b"not JSON", (("ce_id", b"e1"),))

    assert dead_letter_headers(record, "not JSON: line 1") == [
        ("ce_id", b"e1"),
        ("dlq_topic", b"engagement"),
        ("dlq_partition", b"2"),
        ("dlq_offset", b"41"),
        ("dlq_reason", b"not JSON: line 1"),
    ]


def test_a_long_reason_is_cut_to_the_limit() -> None:
    record = Record("alerts.requested", 0, 7, None, b"{}", ())
    reason = "invalid AlertRequested: " + "x" * 5000

    headers = dict(dead_letter_headers(record, reason))

    assert len(headers["dlq_reason"]) == MAX_DEAD_LETTER_REASON == 1000
    assert headers["dlq_reason"] == reason[:1000].encode()
