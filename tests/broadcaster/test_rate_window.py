"""The sender's send rate (`allim_broadcaster_send_rate`): the sends of the last window."""

from __future__ import annotations

import pytest

from broadcaster.metrics import RateWindow


def test_the_rate_counts_the_last_window_only() -> None:
    window = RateWindow(5.0)
    window.add(1_000, now=0.0)
    window.add(1_000, now=3.0)
    assert window.rate(now=4.0) == pytest.approx(400.0)  # 2,000 in the last 5 s
    assert window.rate(now=7.5) == pytest.approx(200.0)  # the first has left the window
    assert window.rate(now=9.0) == 0.0


def test_a_sender_nobody_scrapes_holds_only_the_last_window() -> None:
    # a request every 10 ms for an hour, and the rate never read: what it holds stays a
    # window's worth (501 sends), not the 360,000 of the hour
    window = RateWindow(5.0)
    for tick in range(360_000):
        window.add(1_000, now=tick / 100)
    assert len(window) == 501
    assert window.rate(now=3_599.99) == pytest.approx(501 * 1_000 / 5.0)
