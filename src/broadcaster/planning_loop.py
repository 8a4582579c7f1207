"""The planner's consumer: every request on `alerts.requested` planned, then committed.

A record is committed only after its alert is planned and its shard tasks published. When
planning fails (the broker or the database away), every partition of the fetch is rewound
to its first record not yet planned (the one that failed, in its own partition) and the
error goes to the supervisor, which backs off and runs the loop again from those records;
planning an alert twice only republishes its unfinished shards.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from broadcaster.planner import Planner
from common.kafka import ConsumedRecord

logger = logging.getLogger(__name__)


async def consume_requests(
    planner: Planner, consumer: AIOKafkaConsumer, stopping: asyncio.Event
) -> None:
    """Plan every request on `alerts.requested` until `stopping`, committing each after it."""
    while not stopping.is_set():
        batches = await consumer.getmany(timeout_ms=500, max_records=50)
        # per partition of the fetch: the first record not planned yet
        unplanned = {p: records[0].offset for p, records in batches.items() if records}
        try:
            for partition, records in batches.items():
                for record in records:
                    await _plan(planner, consumer, partition, record)
                    unplanned[partition] = record.offset + 1
                    if stopping.is_set():
                        return
                unplanned.pop(partition, None)
        except BaseException:
            assigned = consumer.assignment()  # a rebalance may have taken some meanwhile
            for partition, offset in unplanned.items():
                if partition in assigned:
                    consumer.seek(partition, offset)  # fetched again on the next run
            raise


async def _plan(
    planner: Planner, consumer: AIOKafkaConsumer, partition: TopicPartition, record: ConsumedRecord
) -> None:
    outcome = await planner.handle(record)
    logger.info("request %s@%s: %s", record.partition, record.offset, outcome)
    try:
        await consumer.commit({partition: record.offset + 1})
    except KafkaError as exc:
        # a rebalance took the partition: the record comes again, and
        # planning an alert a second time only republishes its shards
        logger.warning("commit after planning failed: %r", exc)
