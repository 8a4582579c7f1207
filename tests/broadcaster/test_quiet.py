"""Quiet hours across midnight, at their boundaries, and in other zones."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from broadcaster.config import BroadcasterSettings
from broadcaster.main import quiet_hours
from broadcaster.quiet import BRAND_QUIET_HOURS, next_brand_window
from common.quiet_hours import QuietHours

KST = ZoneInfo("Asia/Seoul")
NIGHT = QuietHours(time(20, 50), time(8, 0), "Asia/Seoul")


def kst(day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=KST)


@pytest.mark.parametrize(
    ("now", "until"),
    [
        (kst(25, 20, 49, 59), None),  # one second before the window
        (kst(25, 20, 50), kst(26, 8, 0)),  # start is inclusive
        (kst(25, 23, 59, 59), kst(26, 8, 0)),
        (kst(26, 0, 0), kst(26, 8, 0)),  # past midnight: today's 08:00
        (kst(26, 7, 59, 59), kst(26, 8, 0)),
        (kst(26, 8, 0), None),  # end is exclusive
        (kst(26, 12, 0), None),
    ],
)
def test_promotional_is_held_through_the_night(now: datetime, until: datetime | None) -> None:
    assert NIGHT.held_until("promotional", now) == until


@pytest.mark.parametrize("category", ["emergency", "public"])
def test_emergency_and_public_never_wait(category: str) -> None:
    for hour in range(24):
        assert NIGHT.held_until(category, kst(25, hour, 30)) is None


def test_answer_is_in_the_callers_zone() -> None:
    # 12:00 UTC is 21:00 KST: held until 08:00 KST next day, which is 23:00 UTC
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    until = NIGHT.held_until("promotional", now)
    assert until == datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
    assert until is not None and until.tzinfo is UTC


def test_utc_just_before_and_after_the_boundaries() -> None:
    # 20:50 KST is 11:50 UTC; 08:00 KST is 23:00 UTC the day before
    assert NIGHT.held_until("promotional", datetime(2026, 11, 25, 11, 49, 59, tzinfo=UTC)) is None
    assert NIGHT.held_until("promotional", datetime(2026, 11, 25, 11, 50, tzinfo=UTC)) is not None
    assert NIGHT.held_until("promotional", datetime(2026, 11, 25, 22, 59, 59, tzinfo=UTC)) == (
        datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
    )
    assert NIGHT.held_until("promotional", datetime(2026, 11, 25, 23, 0, tzinfo=UTC)) is None


def test_a_window_within_one_day() -> None:
    lunch = QuietHours(time(12, 0), time(13, 30), "Asia/Seoul")
    assert lunch.held_until("promotional", kst(25, 11, 59)) is None
    assert lunch.held_until("promotional", kst(25, 12, 0)) == kst(25, 13, 30)
    assert lunch.held_until("promotional", kst(25, 13, 30)) is None


def test_equal_start_and_end_means_no_quiet_hours() -> None:
    never = QuietHours(time(0, 0), time(0, 0), "Asia/Seoul")
    assert all(never.held_until("promotional", kst(25, h, 0)) is None for h in range(24))


def test_other_zone_follows_its_daylight_saving() -> None:
    # New York: 2026-11-01 02:00 EDT falls back to 01:00 EST
    evening = QuietHours(time(22, 0), time(7, 0), "America/New_York")
    now = datetime(2026, 10, 31, 23, 0, tzinfo=ZoneInfo("America/New_York"))
    until = evening.held_until("promotional", now)
    assert until is not None
    assert until == datetime(2026, 11, 1, 7, 0, tzinfo=ZoneInfo("America/New_York"))
    # 8 hours of wall time are 9 of real time that night (aware subtraction in one zone
    # ignores the offset change, so compare in UTC)
    assert until.astimezone(UTC) - now.astimezone(UTC) == timedelta(hours=9)


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        NIGHT.held_until("promotional", datetime(2026, 11, 25, 21, 0))


@pytest.mark.parametrize("zone", ["Asia/Nowhere", "", "../etc/passwd"])
def test_unknown_zone_is_refused(zone: str) -> None:
    with pytest.raises(ValueError, match="not an IANA zone"):
        QuietHours(time(20, 50), time(8, 0), zone)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (kst(25, 21, 0), kst(26, 8, 0)),
        (kst(26, 3, 0), kst(26, 8, 0)),
        (kst(26, 7, 59, 59), kst(26, 8, 0)),
        # our clock says the window is over (the provider's is a little behind): go now
        (kst(26, 8, 0, 1), kst(26, 8, 0, 1)),
    ],
)
def test_next_brand_window(now: datetime, expected: datetime) -> None:
    assert next_brand_window(now) == expected


def test_brand_window_is_the_providers_rule() -> None:
    assert (BRAND_QUIET_HOURS.start, BRAND_QUIET_HOURS.end) == (time(20, 50), time(8, 0))
    assert BRAND_QUIET_HOURS.timezone == "Asia/Seoul"


def test_quiet_hours_from_settings() -> None:
    settings = BroadcasterSettings(
        environment="development",
        broadcaster_quiet_start="22:00",
        broadcaster_quiet_end="06:30",
        broadcaster_quiet_timezone="Asia/Tokyo",
    )
    hours = quiet_hours(settings)
    assert hours == QuietHours(time(22, 0), time(6, 30), "Asia/Tokyo")
    assert quiet_hours(BroadcasterSettings(environment="development")) == NIGHT
    tokyo = ZoneInfo("Asia/Tokyo")
    # 21:30 in Seoul is 21:30 in Tokyo too (both UTC+9): not yet quiet
    assert hours.held_until("promotional", kst(25, 21, 30)) is None
    assert hours.held_until("promotional", kst(25, 22, 0)) == datetime(
        2026, 11, 26, 6, 30, tzinfo=tokyo
    )
