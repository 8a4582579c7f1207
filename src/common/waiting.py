"""Waiting that a stop cuts short: the one pause every long-running loop takes."""

from __future__ import annotations

import asyncio


async def wait_or_stop(stopping: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds` for `stopping`; True when it was set (the caller stops)."""
    if stopping.is_set():
        return True
    try:
        await asyncio.wait_for(stopping.wait(), seconds)
    except TimeoutError:
        return False
    return True
