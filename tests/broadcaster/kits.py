"""The builders of a broadcaster test's world: subscribers in a district of their own, and
alerts as the gateway writes and requests them."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from tests.waiting import eventually

from broadcaster.store import Store
from common import topics
from common.messages import AlertRequested, Audience, Category

# numbers unique in the session: each seeding takes a block of ten million
_numbers = itertools.count(1)


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
        test_of: uuid.UUID | None = None,
        alert_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        """An alert row as the gateway writes it (a test send's when `test_of` is set)."""
        alert_id = alert_id or uuid.uuid4()
        await self.store.pool.execute(
            "INSERT INTO alerts (id, title, body, category, buttons, audience, send_at, expires_at,"
            " status, test_of) VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8, $9, $10)",
            alert_id,
            title,
            "강풍과 호우에 대비하세요. 자세한 내용은 링크를 확인하세요.",
            category,
            "[]",
            audience.model_dump_json(),
            send_at,
            expires_at,
            status,
            test_of,
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
        """Wait until the alert's status is one of `statuses`; its row then."""
        row: asyncpg.Record | None = None

        async def reached() -> bool:
            nonlocal row
            row = await self.store.pool.fetchrow("SELECT * FROM alerts WHERE id = $1", alert_id)
            return row is not None and row["status"] in statuses

        try:
            await eventually(reached, within, what=f"alert {alert_id} in {statuses}")
        except AssertionError as error:
            raise AssertionError(f"{error}; its row: {row}") from None
        assert row is not None
        return dict(row)
