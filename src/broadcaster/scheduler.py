"""The planner's poller: scheduled alerts planned when due, stalled shard tasks sent again."""

from __future__ import annotations

import asyncio

from broadcaster.planner import Planner
from common.waiting import wait_or_stop


async def poll_due(
    planner: Planner, interval: float, stall_seconds: float, stopping: asyncio.Event
) -> None:
    """`plan_due` and `republish_stalled` every `interval` seconds until `stopping`."""
    while True:
        await planner.plan_due()
        await planner.republish_stalled(stall_seconds)
        if await wait_or_stop(stopping, interval):
            return
