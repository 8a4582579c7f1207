"""The operator's quiet hours: a daily window during which promotional alerts wait.

The rule is pure (no settings, no clock): the broadcaster holds promotional shards with it,
and the gateway's preview warns with it when a promotional alert would start inside the
window. The window is in wall-clock time of its zone: start inclusive, end exclusive, and a
window whose start is later than its end runs across midnight. Start equal to end means no
window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# categories the operator's quiet hours apply to
HELD_CATEGORIES = frozenset({"promotional"})


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; ValueError, naming it, when there is none such."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"Quiet hours time zone '{name}' is not an IANA zone such as 'Asia/Seoul'."
        ) from exc


@dataclass(frozen=True)
class QuietHours:
    """A daily window of wall-clock time in `timezone` during which some categories wait."""

    start: time
    end: time
    timezone: str
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zone", zone(self.timezone))

    def window_end(self, now: datetime) -> datetime | None:
        """The end of the window `now` falls in, in `now`'s zone; None outside the window."""
        if now.tzinfo is None:
            raise ValueError(f"Time {now.isoformat()} has no time zone; quiet hours need one.")
        local = now.astimezone(self._zone)
        wall = local.time().replace(tzinfo=None)
        if self.start == self.end:
            return None
        if self.start < self.end:
            inside = self.start <= wall < self.end
            end_day = local.date()
        elif wall >= self.start:
            inside, end_day = True, local.date() + timedelta(days=1)
        else:
            inside, end_day = wall < self.end, local.date()
        if not inside:
            return None
        return self._at(end_day, self.end).astimezone(now.tzinfo)

    def held_until(self, category: str, now: datetime) -> datetime | None:
        """When an alert of `category` may be sent, if it must wait; None to send now."""
        if category not in HELD_CATEGORIES:
            return None
        return self.window_end(now)

    def _at(self, day: date, wall: time) -> datetime:
        return datetime.combine(day, wall, tzinfo=self._zone)
