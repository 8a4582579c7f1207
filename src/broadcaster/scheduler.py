"""The planner's poller: scheduled alerts planned when due, stalled shard tasks sent again,
and alerts that will miss their deadline counted."""

from __future__ import annotations

import asyncio
import logging

from broadcaster.planner import Planner
from common.supervision import TRANSIENT
from common.waiting import wait_or_stop

logger = logging.getLogger(__name__)


async def poll_due(
    planner: Planner, interval: float, stall_seconds: float, stopping: asyncio.Event
) -> None:
    """`plan_due`, `republish_stalled` and `measure_late` every `interval` seconds until
    `stopping`.

    A failed round is tried again after `interval`, not backed off like the supervisor's
    restarts: scheduled alerts go out within one interval of the database coming back.
    """
    while True:
        try:
            await planner.plan_due()
            await planner.republish_stalled(stall_seconds)
            await planner.measure_late()
        except TRANSIENT as exc:
            logger.warning("due-alert poll failed: %r", exc, exc_info=exc)
        if await wait_or_stop(stopping, interval):
            return
