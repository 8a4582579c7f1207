"""Kafka topic names and how each is created; allim never relies on auto-creation."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

logger = logging.getLogger(__name__)

ALERTS_REQUESTED = "alerts.requested"
ALERTS_CONTROL = "alerts.control"
BROADCAST_SHARDS = "broadcast.shards"
BROADCAST_SHARDS_URGENT = "broadcast.shards.urgent"
DELIVERIES = "deliveries"
ALERT_EVENTS = "alerts.lifecycle"
ENGAGEMENT = "engagement"
ALERTS_STATS = "alerts.stats"
DEAD_LETTER = "allim.dead-letter"


@dataclass(frozen=True)
class TopicSpec:
    """A topic and the partitions and configs it is created with."""

    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(ALERTS_REQUESTED, 3),
    TopicSpec(ALERTS_CONTROL, 1),
    # shards spread over sender processes through these partitions
    TopicSpec(BROADCAST_SHARDS, 12),
    TopicSpec(BROADCAST_SHARDS_URGENT, 12),
    TopicSpec(DELIVERIES, 6),
    TopicSpec(ALERT_EVENTS, 3),
    TopicSpec(ENGAGEMENT, 6),
    TopicSpec(ALERTS_STATS, 3, {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}),
    TopicSpec(DEAD_LETTER, 1, {"retention.ms": str(14 * 24 * 3600 * 1000)}),
)


def partitions(*names: str) -> list[TopicPartition]:
    """Every partition of the named topics, as they are created (`TOPICS`)."""
    counts = {spec.name: spec.partitions for spec in TOPICS}
    return [TopicPartition(name, n) for name in names for n in range(counts[name])]


async def ensure_topics(bootstrap: str, specs: tuple[TopicSpec, ...] = TOPICS) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="allim-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if not missing:
            return []
        try:
            await admin.create_topics(
                [
                    NewTopic(
                        s.name,
                        num_partitions=s.partitions,
                        replication_factor=1,
                        topic_configs=s.configs,
                    )
                    for s in missing
                ]
            )
        except TopicAlreadyExistsError:
            # another process created them between our look and our create
            logger.info("topics created concurrently by another process")
        logger.info("created topics %s", [s.name for s in missing])
        return [s.name for s in missing]
    finally:
        await admin.close()
