"""The clients a benchmark drives its stack with: alerts in, the sandbox's ledger and stats out.

Alerts go in either as an operator posts them (`GatewayAlerts`: `POST /v1/alerts` on a running
`allim gateway`, what the end-to-end figures use), or straight to the planner the way the
gateway's outbox relay hands them over (`Alerts`: a row in `alerts`, then an `AlertRequested`
record on `alerts.requested`), for benchmarks that run without a gateway. `warm_up` sends one
tiny alert through either before timing starts.

Timing comes from the sandbox's own clock (`Sandbox`): the ledger of an alert holds the unix
times of its first and last accepted batch, so a figure is "from the moment the alert was handed
over to the moment the sandbox accepted its last batch", with no polling delay in it.

The stack these run against (database, subscribers, child processes) is `_stack.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson

from _stack import WARMUP_TAG, Stack, log
from cli.processes import Service
from common import topics
from common.kafka import create_producer
from common.messages import AlertRequested, Audience, Category


@dataclass
class Alerts:
    """Hands alerts to the planner: the `alerts` row, then the `alerts.requested` record."""

    bench: Stack
    connection: asyncpg.Connection
    producer: Any  # AIOKafkaProducer

    async def post(
        self,
        audience: Audience,
        category: Category = "public",
        title: str = "벤치마크 안내",
        body: str = "allim benchmark alert: please ignore.",
    ) -> tuple[uuid.UUID, float]:
        """Create and request one alert; its id and the unix time it was handed over."""
        alert_id = uuid.uuid4()
        handed_over = time.time()
        now = datetime.now(UTC)
        await self.connection.execute(
            "INSERT INTO alerts (id, title, body, category, buttons, audience, status)"
            " VALUES ($1, $2, $3, $4, '[]'::jsonb, $5::jsonb, 'queued')",
            alert_id,
            title,
            body,
            category,
            audience.model_dump_json(),
        )
        request = AlertRequested(
            alert_id=alert_id,
            title=title,
            body=body,
            category=category,
            buttons=[],
            audience=audience,
            requested_at=now,
        )
        await self.producer.send_and_wait(
            topics.ALERTS_REQUESTED,
            value=request.model_dump_json().encode(),
            key=str(alert_id).encode(),
        )
        return alert_id, handed_over


@contextlib.asynccontextmanager
async def alerts(bench: Stack) -> AsyncIterator[Alerts]:
    """An `Alerts` with its own database connection and Kafka producer."""
    connection = await asyncpg.connect(bench.dsn)
    producer = create_producer(bench.kafka, "allim-bench")
    await producer.start()
    try:
        yield Alerts(bench, connection, producer)
    finally:
        await producer.stop()
        await connection.close()


@dataclass
class GatewayAlerts:
    """Posts alerts as an operator does: `POST /v1/alerts` on a running `allim gateway`."""

    client: httpx.AsyncClient
    url: str
    api_key: str

    async def post(
        self,
        audience: Audience,
        category: Category = "public",
        title: str = "벤치마크 안내",
        body: str = "allim benchmark alert: please ignore.",
    ) -> tuple[uuid.UUID, float]:
        """POST one alert; its id and the unix time the request was sent."""
        document: dict[str, Any] = {
            "title": title,
            "body": body,
            "category": category,
            "audience": audience.model_dump(exclude_none=True),
        }
        posted = time.time()
        answer = await self.client.post(
            f"{self.url}/v1/alerts", json=document, headers={"X-API-Key": self.api_key}
        )
        if answer.status_code != 202:
            raise RuntimeError(f"POST /v1/alerts answered {answer.status_code}: {answer.text}")
        return uuid.UUID(answer.json()["id"]), posted


class Sandbox:
    """Reads the sandbox's ledger and stats, and changes its behaviour."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self._client = client
        self._url = url

    async def ledger(self, alert_id: uuid.UUID | str) -> dict[str, Any]:
        """`GET /_sandbox/ledger/{alert}`: accepted, duplicates, first/last accepted times."""
        response = await self._client.get(f"{self._url}/_sandbox/ledger/{alert_id}")
        response.raise_for_status()
        document: dict[str, Any] = orjson.loads(response.content)
        return document

    async def sms_ledger(self, alert_id: uuid.UUID | str) -> dict[str, Any]:
        """`GET /_sandbox/sms/ledger/{alert}`: the SMS dealer's accepted, duplicates, times."""
        response = await self._client.get(f"{self._url}/_sandbox/sms/ledger/{alert_id}")
        response.raise_for_status()
        document: dict[str, Any] = orjson.loads(response.content)
        return document

    async def sms_ledger_recipients(self, alert_id: uuid.UUID | str) -> set[str]:
        """`GET /_sandbox/sms/ledger/{alert}/recipients`: every number the SMS dealer accepted."""
        response = await self._client.get(f"{self._url}/_sandbox/sms/ledger/{alert_id}/recipients")
        response.raise_for_status()
        return {line for line in response.text.splitlines() if line}

    async def configure_sms(self, **behaviour: object) -> None:
        """`PATCH /_sandbox/sms/config`: the SMS dealer's rates, faults and codes."""
        response = await self._client.patch(f"{self._url}/_sandbox/sms/config", json=behaviour)
        response.raise_for_status()

    async def stats(self) -> dict[str, Any]:
        """`GET /_sandbox/stats`: totals and accepted recipients per second."""
        response = await self._client.get(f"{self._url}/_sandbox/stats")
        response.raise_for_status()
        document: dict[str, Any] = orjson.loads(response.content)
        return document

    async def configure(self, **behaviour: object) -> None:
        """`PATCH /_sandbox/config`."""
        response = await self._client.patch(f"{self._url}/_sandbox/config", json=behaviour)
        response.raise_for_status()

    async def reset(self) -> None:
        """`POST /_sandbox/reset`: forget both dealers' ledgers, stats and keys."""
        response = await self._client.post(f"{self._url}/_sandbox/reset")
        response.raise_for_status()

    async def wait_for(
        self,
        alert_id: uuid.UUID | str,
        expected: int,
        deadline_s: float,
        services: tuple[Service, ...] = (),
        poll: float = 0.2,
        stall_s: float = 60.0,
    ) -> dict[str, Any]:
        """Poll the ledger until `expected` recipients were accepted; its summary.

        Gives up after `deadline_s`, or sooner when nothing more was accepted for `stall_s`
        (a broadcast that left recipients out never completes).
        """
        loop = asyncio.get_running_loop()
        stop = loop.time() + deadline_s
        seen, moved = -1, loop.time()
        while True:
            ledger = await self.ledger(alert_id)
            accepted = int(ledger["accepted"])
            if accepted >= expected:
                return ledger
            for service in services:
                if not service.alive():
                    raise RuntimeError(f"{service.name} died; its log:\n{service.tail()}")
            now = loop.time()
            if accepted != seen:
                seen, moved = accepted, now
            if now > stop or now - moved > stall_s:
                raise TimeoutError(
                    f"Alert {alert_id}: {accepted} of {expected} accepted after "
                    f"{deadline_s - (stop - now):.0f} s ({now - moved:.0f} s without progress)."
                )
            await asyncio.sleep(poll)


@contextlib.asynccontextmanager
async def sandbox_client(bench: Stack) -> AsyncIterator[Sandbox]:
    """A `Sandbox` reader for the stack's running sandbox."""
    async with httpx.AsyncClient(timeout=30.0) as client:
        yield Sandbox(client, bench.sandbox_url)


async def warm_up(
    bench: Stack,
    posting: Alerts | GatewayAlerts,
    sandbox: Sandbox,
    services: tuple[Service, ...],
) -> None:
    """Send one tiny alert end to end, so consumer groups have joined before timing starts."""
    if bench.subscribers == 0:
        raise RuntimeError("Load subscribers (with the warm-up tag) before warming up.")
    alert_id, _ = await posting.post(Audience(tags=[WARMUP_TAG]))
    ledger = await sandbox.wait_for(alert_id, 1, 120.0, services)
    log("warmed up: %d recipients of the warm-up alert accepted", ledger["accepted"])
