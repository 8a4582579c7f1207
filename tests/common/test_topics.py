import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from common.topics import (
    ALERTS_STATS,
    BROADCAST_SHARDS,
    DELIVERIES,
    ENGAGEMENT,
    TOPICS,
    ensure_topics,
    partitions,
)

pytestmark = pytest.mark.integration


async def test_topics_have_explicit_partitions_and_creation_is_idempotent(
    kafka_topics: str,
) -> None:
    assert await ensure_topics(kafka_topics) == []
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_topics)
    await admin.start()
    try:
        described = await admin.describe_topics([s.name for s in TOPICS])
        partitions = {t["topic"]: len(t["partitions"]) for t in described}
        assert partitions == {s.name: s.partitions for s in TOPICS}
        assert partitions[BROADCAST_SHARDS] > 1
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, ALERTS_STATS)]
        )
        resource = responses[0].resources[0]
        entries = {entry[0]: entry[1] for entry in resource[4]}
        assert entries["cleanup.policy"] == "compact"
    finally:
        await admin.close()


def test_partitions_lists_every_partition_of_the_named_topics() -> None:
    found = partitions(ENGAGEMENT, DELIVERIES)
    assert found == [TopicPartition(ENGAGEMENT, n) for n in range(6)] + [
        TopicPartition(DELIVERIES, n) for n in range(6)
    ]
