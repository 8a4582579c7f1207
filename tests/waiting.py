"""Waiting in tests on what will happen: a condition, or a consumer group reaching the end.

A test that waits with one of these proves what it then asserts, not the deadline: the
deadline only bounds how long a broken build takes to fail, so it is generous.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from broadcaster.control import Changes

# how often a condition is looked at again: often enough to add little to a test's time
POLL_SECONDS = 0.02


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], within: float = 30.0, what: str = ""
) -> None:
    """Return once `condition()` is true; fail the test if it is not within `within` seconds."""
    try:
        async with asyncio.timeout(within):
            while True:
                held = condition()
                if inspect.isawaitable(held):
                    held = await held
                if held:
                    return
                await asyncio.sleep(POLL_SECONDS)
    except TimeoutError:
        raise AssertionError(
            f"Still not {what or 'true'} after {within} s: {condition!r}"
        ) from None


async def caught_up(
    bootstrap: str, group: str, partitions: Iterable[TopicPartition], within: float = 90.0
) -> None:
    """Wait until `group` has committed the end offset each of `partitions` has now.

    A consumer that commits only after applying (the analytics consumer) has then applied
    every record published before the wait began.
    """
    wanted = list(partitions)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await admin.start()
    try:
        await consumer.start()
        try:
            ends = await consumer.end_offsets(wanted)
        finally:
            await consumer.stop()

        async def committed_to_the_end() -> bool:
            committed = await admin.list_consumer_group_offsets(group, partitions=wanted)
            return all(tp in committed and committed[tp].offset >= ends[tp] for tp in wanted)

        await eventually(committed_to_the_end, within, what=f"{group} committed to the end")
    finally:
        await admin.close()


class Watched(Changes):
    """Changes that tell when someone waits for the next one (a gate holding a batch back)."""

    def __init__(self) -> None:
        super().__init__()
        self.waited = asyncio.Event()

    def wait(self) -> Coroutine[Any, Any, Literal[True]]:
        """Note the waiter, then wait for the next change."""
        self.waited.set()
        return super().wait()
