"""Page cursors: every string of a cursor's documented pattern is a position to page from."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import cursors


@settings(max_examples=200, deadline=None, database=None)
@given(st.datetimes(timezones=st.just(UTC)), st.uuids())
def test_an_alerts_cursor_holds_its_position(created_at: datetime, alert_id: uuid.UUID) -> None:
    cursor = cursors.encode_alerts(created_at, alert_id)
    assert cursors.decode_alerts(cursor) == (created_at, alert_id)


@settings(max_examples=200, deadline=None, database=None)
@given(st.from_regex(cursors.ALERTS_PATTERN, fullmatch=True))
def test_any_cursor_of_the_alerts_pattern_is_a_position(cursor: str) -> None:
    created_at, alert_id = cursors.decode_alerts(cursor)
    assert created_at.tzinfo is UTC
    assert isinstance(alert_id, uuid.UUID)


@settings(max_examples=200, deadline=None, database=None)
@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_an_audit_cursor_holds_its_row(before: int) -> None:
    cursor = cursors.encode_audit(before)
    assert cursors.decode_audit(cursor) == before


@settings(max_examples=200, deadline=None, database=None)
@given(st.from_regex(cursors.AUDIT_PATTERN, fullmatch=True))
def test_any_cursor_of_the_audit_pattern_is_a_row(cursor: str) -> None:
    assert -(2**63) <= cursors.decode_audit(cursor) < 2**63


def test_times_beyond_a_datetime_page_from_its_ends() -> None:
    latest, _ = cursors.decode_alerts("f" * 32)  # microseconds far past the year 9999
    earliest, _ = cursors.decode_alerts("g" * 32)  # negative, far before the year 1
    assert latest == datetime.max.replace(tzinfo=UTC)
    assert earliest == datetime.min.replace(tzinfo=UTC)
