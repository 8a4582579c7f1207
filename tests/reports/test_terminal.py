"""The terminal summary of an alert: its table of numbers and its chart of reads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console

from reports.rollups import AlertRollup, MinuteReads
from reports.terminal import BLOCKS, reads_chart, render_report

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def _series(reads: list[int]) -> list[MinuteReads]:
    return [
        MinuteReads(minute=T0 + timedelta(minutes=n), reads=r, new_readers=r)
        for n, r in enumerate(reads)
        if r
    ]


def _rollup(**changes: Any) -> AlertRollup:
    values: dict[str, Any] = {
        "alert_id": uuid.UUID(int=1),
        "title": "태풍 대비 안내",
        "category": "emergency",
        "status": "completed",
        "targeted": 450_000,
        "delivered": 449_120,
        "failed": 880,
        "failed_by_reason": {"3018": 610, "3019": 270},
        "readers": 481_007,
        "first_readers": 290_011,
        "forwarded_readers": 190_996,
        "taps": 530_122,
        "read_rate": 481_007 / 449_120,
        "forward_rate": 190_996 / 481_007,
        "started_at": T0,
        "completed_at": T0 + timedelta(seconds=150),
        "duration_seconds": 150.0,
        "messages_per_second": 3000.0,
        "series": _series([100, 400, 200]),
    }
    values.update(changes)
    return AlertRollup(**values)


def test_chart_rows_scale_to_the_busiest_minute() -> None:
    chart = reads_chart(_series([0, 8, 4, 2]), width=40, height=2).plain.splitlines()
    label, top, bottom, axis = chart
    assert label == "8 reads/min"
    # minute 0 had no reads, so the series starts at minute 1: three columns
    assert top == BLOCKS[-1] + BLOCKS[0] + BLOCKS[0]
    assert bottom == BLOCKS[-1] + BLOCKS[-1] + BLOCKS[4]
    assert axis.startswith("10:01") and axis.endswith("10:03 UTC")


def test_a_long_series_is_summed_into_the_width() -> None:
    chart = reads_chart(_series([1] * 120), width=60, height=1).plain.splitlines()
    assert chart[0] == "2 reads/2 min"
    assert chart[1] == BLOCKS[-1] * 60


def test_no_reads_says_so() -> None:
    assert reads_chart([], width=40).plain == "no reads yet"


def test_the_report_shows_the_numbers_operators_ask_for() -> None:
    console = Console(record=True, width=100)
    render_report(_rollup(), console)
    text = console.export_text()
    for expected in (
        "449,120",
        "880",
        "3018: 610",
        "2m 30s",
        "3,000",
        "481,007",
        "190,996 (39.7%)",
        "107.1%",
        "400 reads/min",
    ):
        assert expected in text, expected


def test_a_read_rate_before_any_delivery_is_a_dash() -> None:
    console = Console(record=True, width=100)
    render_report(_rollup(delivered=0, readers=0, read_rate=None, series=[]), console)
    (line,) = [line for line in console.export_text().splitlines() if "read rate" in line]
    assert line.strip("│ ").split() == ["read", "rate", "-"]
