"""The provider's BRAND quiet hours: when a message refused with 3022 may go again.

The provider refuses BRAND messages 20:50-08:00 KST (result code 3022), whatever allim is
configured to do; `next_brand_window` says when to try again. The operator's own quiet
hours, which hold promotional alerts, are `common.quiet_hours.QuietHours`.
"""

from __future__ import annotations

from datetime import datetime, time

from common.quiet_hours import QuietHours

# the provider refuses BRAND messages in this window (result code 3022)
BRAND_QUIET_HOURS = QuietHours(time(20, 50), time(8, 0), "Asia/Seoul")


def next_brand_window(now: datetime) -> datetime:
    """When a batch refused with 3022 at `now` should be sent again: 08:00 KST after the
    night `now` falls in, or `now` itself when our clock says the window is already over."""
    return BRAND_QUIET_HOURS.window_end(now) or now
