"""What the gateway's lifespan creates once and every request shares."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from common.tokens import TokenSigner
from common.topics import ensure_topics
from common.waiting import wait_or_stop
from gateway.cap import AreaTable
from gateway.config import GatewaySettings
from gateway.metrics import GatewayMetrics

logger = logging.getLogger(__name__)


@dataclass
class KafkaLink:
    """The gateway's producer, connected in the background so the gateway starts without Kafka.

    `ready` is set once the producer has started; until then intake still works (the
    outbox holds the records) and taps are counted as dropped. `stop_connecting` ends the
    attempts: an attempt cancelled half-way leaves its socket open (aiokafka's bootstrap does
    not close a connection it is cancelled on), so the one under way may end first.
    """

    producer: AIOKafkaProducer
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def connect_forever(self, bootstrap: str, retry_seconds: float = 1.0) -> None:
        """Create the missing topics and start the producer, retrying until the broker answers
        or `stopping` is set."""
        while not self.stopping.is_set():
            try:
                await ensure_topics(bootstrap)
                await self.producer.start()
            except (KafkaError, OSError):
                logger.warning("Kafka is not reachable yet; retrying", exc_info=True)
                await wait_or_stop(self.stopping, retry_seconds)
                continue
            self.ready.set()
            logger.info("Kafka producer connected")
            return

    async def stop_connecting(self, connecting: asyncio.Task[None], grace: float) -> None:
        """Let `connecting` (`connect_forever`) end after its attempt under way, waiting up to
        `grace` seconds; the caller cancels it then, with its other tasks."""
        self.stopping.set()
        await asyncio.wait({connecting}, timeout=grace)


@dataclass
class GatewayState:
    """Shared objects of one gateway process."""

    settings: GatewaySettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    kafka: KafkaLink
    signer: TokenSigner
    metrics: GatewayMetrics
    cap_areas: AreaTable = field(default_factory=lambda: AreaTable({}))
    # tells the outbox relay that a row was just committed
    wake_outbox: Callable[[], None] = lambda: None
