"""Reading a topic back: the records with given keys, as the test suite and the benchmarks
check what was published (the dead letters among them)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from common.topics import partitions

Records = list[ConsumerRecord[bytes, bytes]]


def every_key(keys: Collection[bytes]) -> Callable[[Records], bool]:
    """A stop rule: every one of `keys` was seen at least once."""
    wanted = set(keys)
    return lambda found: {r.key for r in found} >= wanted


async def read_back(
    bootstrap: str,
    topic: str,
    keys: Collection[str | bytes],
    *,
    since: Mapping[TopicPartition, int] | None = None,
    enough: Callable[[Records], bool] | None = None,
    within: float = 20.0,
    linger: float = 0.5,
) -> Records:
    """The records of `topic` keyed by one of `keys`, read from `since` (default: the start)
    until `enough(found)` (default: every key seen), then `linger` seconds more so that a
    duplicate shows; what was found when `within` seconds passed otherwise."""
    wanted = {k.encode() if isinstance(k, str) else k for k in keys}
    stop = enough or every_key(wanted)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    found: Records = []
    try:
        assigned = partitions(topic)
        consumer.assign(assigned)
        if since is None:
            await consumer.seek_to_beginning(*assigned)
        else:
            for partition in assigned:
                consumer.seek(partition, since.get(partition, 0))
        loop = asyncio.get_running_loop()
        until = loop.time() + within
        lingering = False
        while loop.time() < until:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batches.values():
                found.extend(r for r in records if r.key in wanted)
            if not lingering and stop(found):
                lingering, until = True, loop.time() + linger
    finally:
        await consumer.stop()
    return found
