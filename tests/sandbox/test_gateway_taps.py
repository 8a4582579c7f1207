"""The simulator through the gateway's real `/r/{token}` route, read back from Kafka."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr
from tests.waiting import eventually

from common.tokens import TokenSigner
from common.topics import ENGAGEMENT
from gateway.config import GatewaySettings
from gateway.main import create_app as create_gateway
from sandbox.client import SandboxClient
from sandbox.server import serving

BatchBuilder = Callable[..., dict[str, Any]]
TRACKING_SECRET = "test-tracking-secret-0123456789"


@pytest.fixture
async def gateway_url(database_url: str, kafka_topics: str) -> AsyncIterator[str]:
    """A gateway on the test database and broker, over real HTTP, its producer connected."""
    settings = GatewaySettings(
        environment="test",
        database_url=database_url,
        kafka_bootstrap=kafka_topics,
        tracking_secret=SecretStr(TRACKING_SECRET),
        public_base_url="http://127.0.0.1",
    )
    app = create_gateway(settings)
    async with serving(app) as url:
        await asyncio.wait_for(app.state.gateway.kafka.ready.wait(), 60)
        yield url


async def _taps(bootstrap: str, alert_id: str, expected: int) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        ENGAGEMENT, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(30):
            while len(found) < expected:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    found.extend(
                        orjson.loads(r.value)
                        for r in records
                        if r.key == alert_id.encode() and r.value is not None
                    )
    finally:
        await consumer.stop()
    return found


@pytest.mark.integration
@pytest.mark.slow
async def test_simulated_people_read_through_the_gateway(
    sandbox: SandboxClient, gateway_url: str, kafka_topics: str, make_batch: BatchBuilder
) -> None:
    alert_id = str(uuid.uuid4())
    signer = TokenSigner(TRACKING_SECRET.encode()).signer_for(
        uuid.UUID(alert_id), int(time.time()) + 3600
    )
    await sandbox.configure(profile="typical", time_scale=100_000, seed=3, inactive_share=0.1)
    for seq in range(2):
        subscribers = range(seq * 500 + 1, seq * 500 + 501)
        body = make_batch(f"{alert_id}:0:{seq}", [f"010{s:08d}" for s in subscribers])
        for recipient, subscriber in zip(body["recipientList"], subscribers, strict=True):
            recipient["templateParameter"]["link"] = f"{gateway_url}/r/{signer.sign(subscriber)}"
        assert (await sandbox.send(body)).status_code == 200
    totals: dict[str, Any] = {}

    async def settled() -> bool:
        # taps made, and none scheduled or under way any more
        nonlocal totals
        totals = (await sandbox.stats())["totals"]
        return bool(totals["taps_pending"] == 0 and totals["taps_made"] + totals["taps_failed"])

    await eventually(settled, 90, what="settled")
    assert totals["taps_failed"] == 0
    delivered = {int(n[3:]) for n in await sandbox.recipients(alert_id)}
    taps = await _taps(kafka_topics, alert_id, totals["taps_made"])
    assert len(taps) == totals["taps_made"]
    # only delivered subscribers' links are tapped, by about 1.07 readers per delivered
    assert {t["subscriber_id"] for t in taps} <= delivered
    readers = {t["reader_id"] for t in taps}
    assert len(readers) / len(delivered) == pytest.approx(1.07, abs=0.12)
    # the gateway's cookie came back: some readers tapped twice under the same identity
    per_reader = Counter(t["reader_id"] for t in taps)
    assert sum(1 for n in per_reader.values() if n > 1) >= 0.05 * len(readers)
    # forwarded friends tapped the same link as new readers
    readers_per_link = Counter(
        subscriber for subscriber, _ in {(t["subscriber_id"], t["reader_id"]) for t in taps}
    )
    assert any(n > 1 for n in readers_per_link.values())
