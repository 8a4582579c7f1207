"""The planner's consumer: every request on `alerts.requested` planned, then committed.

A record is committed only after its alert is planned and its shard tasks published. When
planning fails (the broker or the database away), the consumer is rewound to the record and
the error goes to the supervisor, which backs off and runs the loop again from that record;
planning an alert twice only republishes its unfinished shards.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from broadcaster.planner import Planner

logger = logging.getLogger(__name__)


async def consume_requests(
    planner: Planner, consumer: AIOKafkaConsumer, stopping: asyncio.Event
) -> None:
    """Plan every request on `alerts.requested` until `stopping`, committing each after it."""
    while not stopping.is_set():
        batches = await consumer.getmany(timeout_ms=500, max_records=50)
        for partition, records in batches.items():
            for record in records:
                try:
                    outcome = await planner.handle(record)
                except BaseException:
                    consumer.seek(partition, record.offset)  # fetched again on the next run
                    raise
                logger.info("request %s@%s: %s", record.partition, record.offset, outcome)
                try:
                    await consumer.commit({partition: record.offset + 1})
                except KafkaError as exc:
                    # a rebalance took the partition: the record comes again, and
                    # planning an alert a second time only republishes its shards
                    logger.warning("commit after planning failed: %r", exc)
                if stopping.is_set():
                    return
