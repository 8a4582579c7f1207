"""Fixtures of the broadcaster tests: a store, subscribers and alerts in a district of their
own (so tests that share the session's database never see each other's audience), a real
sandbox as a child process, and the environment of an `allim broadcaster` child process."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from broadcaster.store import Store
from cli.processes import Service, free_port
from common import topics
from common.db import asyncpg_dsn
from common.kafka import create_producer
from common.messages import AlertRequested, Audience, Category

SANDBOX_SECRET = "sandbox-secret-for-tests-0123456789"
TRACKING_SECRET = "test-tracking-secret-0123456789"
_numbers = itertools.count(1)


@pytest.fixture(scope="session")
async def store(database_url: str) -> AsyncIterator[Store]:
    """The broadcaster's store on the session's database."""
    store = await Store.connect(asyncpg_dsn(database_url), 8)
    yield store
    await store.close()


@pytest.fixture(scope="session")
async def producer(kafka_topics: str) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer on the test broker."""
    producer = create_producer(kafka_topics, "allim-test")
    await producer.start()
    yield producer
    await producer.stop()


@dataclass(frozen=True)
class Seeded:
    """Subscribers seeded for one test, all in one district nobody else uses."""

    district: str
    ids: list[int]
    numbers: list[str]

    @property
    def audience(self) -> Audience:
        """The audience filter that selects exactly these subscribers (while active)."""
        return Audience(districts=[self.district])


@dataclass
class Kit:
    """Builders of a test's subscribers and alerts, on the session's database and broker."""

    store: Store
    producer: AIOKafkaProducer

    async def seed(self, count: int, *, tags: list[str] | None = None) -> Seeded:
        """`count` active subscribers in a fresh district; numbers unique in the session."""
        district = "d-" + uuid.uuid4().hex[:12]
        base = next(_numbers) * 10_000_000
        numbers = [f"010{base + i:010d}" for i in range(count)]
        async with self.store.pool.acquire() as connection:
            await connection.copy_records_to_table(
                "subscribers",
                records=[(n, district, tags or []) for n in numbers],
                columns=["recipient_no", "district", "tags"],
            )
            rows = await connection.fetch(
                "SELECT id, recipient_no FROM subscribers WHERE district = $1 ORDER BY id", district
            )
        return Seeded(district, [r["id"] for r in rows], [r["recipient_no"] for r in rows])

    async def create_alert(
        self,
        audience: Audience,
        *,
        category: Category = "public",
        status: str = "queued",
        send_at: datetime | None = None,
        expires_at: datetime | None = None,
        title: str = "태풍 대비 안내",
    ) -> uuid.UUID:
        """An alert row as the gateway writes it."""
        alert_id = uuid.uuid4()
        await self.store.pool.execute(
            "INSERT INTO alerts (id, title, body, category, buttons, audience, send_at, expires_at,"
            " status) VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8, $9)",
            alert_id,
            title,
            "강풍과 호우에 대비하세요. 자세한 내용은 링크를 확인하세요.",
            category,
            "[]",
            audience.model_dump_json(),
            send_at,
            expires_at,
            status,
        )
        return alert_id

    @staticmethod
    def requested(alert_id: uuid.UUID, audience: Audience, category: Category) -> AlertRequested:
        """The `alerts.requested` message of an alert."""
        return AlertRequested(
            alert_id=alert_id,
            title="태풍 대비 안내",
            body="강풍과 호우에 대비하세요.",
            category=category,
            buttons=[],
            audience=audience,
            requested_at=datetime.now().astimezone(),
        )

    async def request(self, alert_id: uuid.UUID, audience: Audience, category: Category) -> None:
        """Publish the alert on `alerts.requested`, as the gateway's outbox relay does."""
        await self.producer.send_and_wait(
            topics.ALERTS_REQUESTED,
            value=self.requested(alert_id, audience, category).model_dump_json().encode(),
            key=str(alert_id).encode(),
        )

    async def wait_for_status(
        self, alert_id: uuid.UUID, statuses: set[str], within: float
    ) -> dict[str, Any]:
        """Poll the alert row until its status is one of `statuses`; its row then."""
        deadline = time.monotonic() + within
        row: asyncpg.Record | None = None
        while time.monotonic() < deadline:
            row = await self.store.pool.fetchrow("SELECT * FROM alerts WHERE id = $1", alert_id)
            if row is not None and row["status"] in statuses:
                return dict(row)
            await asyncio.sleep(0.2)
        raise AssertionError(f"alert {alert_id} did not reach {statuses} in {within} s: {row}")


@pytest.fixture
def kit(store: Store, producer: AIOKafkaProducer) -> Kit:
    """The builders, on the session's store and producer."""
    return Kit(store, producer)


@dataclass
class Sandbox:
    """A running `allim sandbox` child process."""

    url: str
    service: Service

    def ledger(self, alert_id: uuid.UUID) -> dict[str, Any]:
        """The sandbox's ledger of the alert."""
        response = httpx.get(f"{self.url}/_sandbox/ledger/{alert_id}", timeout=10)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document

    def accepted_numbers(self, alert_id: uuid.UUID) -> list[str]:
        """Every recipientNo the sandbox accepted for the alert."""
        response = httpx.get(f"{self.url}/_sandbox/ledger/{alert_id}/recipients", timeout=30)
        response.raise_for_status()
        return [line for line in response.text.splitlines() if line]

    def configure(self, **behaviour: object) -> None:
        """Change the sandbox's behaviour at once (latency, shares, rates)."""
        response = httpx.patch(f"{self.url}/_sandbox/config", json=behaviour, timeout=10)
        response.raise_for_status()


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The sandbox provider as a child process, with the recipient simulator off."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    service = Service(
        "sandbox",
        ["sandbox"],
        {
            "ALLIM_SANDBOX_PORT": str(port),
            "ALLIM_SANDBOX_PROFILE": "off",
            "ALLIM_SANDBOX_SECRET_KEY": SANDBOX_SECRET,
            "ALLIM_ENVIRONMENT": "test",
            "ALLIM_TRACKING_SECRET": TRACKING_SECRET,
            "ALLIM_LOG_LEVEL": "WARNING",
        },
        f"{url}/_sandbox/config",
        tmp_path_factory.mktemp("sandbox") / "sandbox.log",
    )
    service.start()
    try:
        service.wait_ready(60)
        yield Sandbox(url, service)
    finally:
        service.stop()


@pytest.fixture
def broadcaster_env(
    database_url: str, kafka_topics: str, sandbox: Sandbox, tmp_path: Path
) -> dict[str, str]:
    """Environment of an `allim broadcaster` child process on the test stack and sandbox."""
    suffix = uuid.uuid4().hex[:8]
    return {
        "ALLIM_ENVIRONMENT": "test",
        "ALLIM_DATABASE_URL": database_url,
        "ALLIM_KAFKA_BOOTSTRAP": kafka_topics,
        "ALLIM_TRACKING_SECRET": TRACKING_SECRET,
        "ALLIM_KAKAO_BASE_URL": sandbox.url,
        "ALLIM_KAKAO_SECRET": SANDBOX_SECRET,
        "ALLIM_BROADCASTER_PLANNER_GROUP": f"planner-{suffix}",
        "ALLIM_BROADCASTER_SENDER_GROUP": f"senders-{suffix}",
        "ALLIM_BROADCASTER_SESSION_TIMEOUT_MS": "6000",
        "ALLIM_BROADCASTER_SHARD_SIZE": "500",
        "ALLIM_BROADCASTER_CONTROL_POLL_SECONDS": "0.2",
        # no quiet hours: these tests must not depend on the time of day in Seoul
        "ALLIM_BROADCASTER_QUIET_START": "00:00",
        "ALLIM_BROADCASTER_QUIET_END": "00:00",
        "ALLIM_LOG_LEVEL": os.environ.get("ALLIM_TEST_LOG_LEVEL", "INFO"),
    }


class Spawn(Protocol):
    """`spawn(role, name, **env)`: an `allim broadcaster --role ROLE` child process, not started."""

    def __call__(self, role: str, name: str = "broadcaster", **env: str) -> Service: ...


@pytest.fixture
def spawn(broadcaster_env: dict[str, str], tmp_path: Path) -> Iterator[Spawn]:
    """Makes `allim broadcaster --role ROLE` child processes; stops those left at the end."""
    made: list[Service] = []

    def make(role: str, name: str = "broadcaster", **env: str) -> Service:
        port = free_port()
        service = Service(
            name,
            ["broadcaster", "--role", role],
            {**broadcaster_env, **env, "ALLIM_BROADCASTER_METRICS_PORT": str(port)},
            f"http://127.0.0.1:{port}/metrics",
            tmp_path / f"{name}.log",
        )
        made.append(service)
        return service

    yield make
    for service in made:
        service.stop()
