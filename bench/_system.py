"""The system a chaos scenario breaks: every allim process on a bench stack, and its state.

`System` starts the sandbox, the gateway, a planner, the sender processes and analytics as
child processes of one benchmark stack (`_stack.Stack`), kills and restarts them, stops and
starts the stack's Kafka broker and PostgreSQL server (`stack_script`), and reads what the
scenarios check: an alert's status, the senders' paused shards, the failures route.
The scenarios are in `_scenarios.py`, their runner and verdicts in `bench/chaos.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

import _clients
import _stack
from cli.processes import Service, ServiceGroup, free_port

logger = logging.getLogger("chaos")

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "local"
TERMINAL = frozenset({"completed", "cancelled", "failed", "not_broadcast"})


def stack_script(kind: str, action: str, state: Path) -> None:
    """Run deploy/local/{kind}/{kind}.sh `action` on the stack's state folder."""
    subprocess.run(
        [str(DEPLOY / kind / f"{kind}.sh"), action, str(state)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=180,
    )


@dataclass
class System:
    """On `bench`'s stack: sandbox, gateway, a planner, `senders` senders and analytics.

    `rate` is the dealer's contract (messages/s): the sandbox enforces it and the senders are
    configured to keep to it; 0 means unlimited.
    """

    bench: _stack.Stack
    senders: int = 2
    analytics: bool = True
    rate: float = 0.0
    shard_size: int = 20_000
    # a shard not started this long after planning is published again (the broadcaster's
    # repair for a lost shard task); shorter than its default so a chaos run sees it work
    stall_seconds: float = 60.0
    api_key: str = ""
    gateway_url: str = ""
    sandbox: _clients.Sandbox | None = None
    _client: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=120))

    @property
    def group(self) -> ServiceGroup:
        """The services, in start order."""
        return self.bench.group

    @property
    def sender_services(self) -> list[Service]:
        """The sender processes."""
        return [s for s in self.group.services if s.name.startswith("broadcaster-sender-")]

    def service(self, name: str) -> Service:
        """The service called `name`."""
        for candidate in self.group.services:
            if candidate.name == name:
                return candidate
        raise KeyError(f"No service named '{name}' runs in this system.")

    def _start(self) -> None:
        bench = self.bench
        bench.start_sandbox(messages_per_second=self.rate)
        bench.start_gateway()
        self.gateway_url = bench.gateway_url
        limits = {
            "public_base_url": self.gateway_url,
            "broadcaster_rate_messages_per_second": self.rate,
            "broadcaster_shard_size": self.shard_size,
            "broadcaster_stall_seconds": self.stall_seconds,
        }
        bench.start_broadcaster("planner", 0, **limits)
        for index in range(self.senders):
            bench.start_broadcaster("sender", index + 1, **limits)
        if self.analytics:
            port = free_port()
            env = bench.common_env() | {"ALLIM_ANALYTICS_METRICS_PORT": str(port)}
            bench.group.start(
                Service(
                    "analytics",
                    ["analytics"],
                    env,
                    f"http://127.0.0.1:{port}/metrics",
                    bench.workdir / "analytics.log",
                )
            )

    async def start(self) -> None:
        """Start every process and wait until each answers."""
        self.api_key = await self.bench.operator_key()
        await asyncio.to_thread(self._start)
        self.sandbox = _clients.Sandbox(self._client, self.bench.sandbox_url)

    async def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL)."""
        await asyncio.to_thread(self.group.stop_all)
        await self._client.aclose()

    async def kill_and_restart(self, service: Service) -> None:
        """SIGKILL `service`, then start it again and wait until it answers."""
        logger.info("SIGKILL %s (pid %s)", service.name, service.pid)
        await asyncio.to_thread(service.kill)
        await asyncio.to_thread(service.start)
        await asyncio.to_thread(service.wait_ready, 90.0)

    def check_alive(self) -> None:
        """Raise when a process died that nobody killed."""
        for service in self.group.services:
            if not service.alive():
                raise RuntimeError(
                    f"Service '{service.name}' died; its log {service.log_path}:\n{service.tail()}"
                )

    @property
    def provider(self) -> _clients.Sandbox:
        """The sandbox's ledger, stats and behaviour; the system must have started."""
        if self.sandbox is None:
            raise RuntimeError("The system has not been started.")
        return self.sandbox

    async def ledger_recipients(self, alert_id: str) -> set[str]:
        """Every recipientNo the sandbox accepted for one alert."""
        url = f"{self.bench.sandbox_url}/_sandbox/ledger/{alert_id}/recipients"
        answer = await self._client.get(url)
        answer.raise_for_status()
        return {line for line in answer.text.splitlines() if line}

    # the gateway

    async def post_alert(self, title: str, fallback: bool = True) -> str:
        """POST a public alert to everyone through the gateway; its id. Without `fallback`,
        those KakaoTalk refuses are failures rather than sent by SMS/LMS."""
        body: dict[str, Any] = {
            "title": title,
            "body": f"{title}: allim chaos run. 이 메시지는 시험용입니다.",
            "category": "public",
            "audience": "all",
        }
        if not fallback:
            body["fallback"] = {"enabled": False}
        answer = await self._client.post(
            f"{self.gateway_url}/v1/alerts", json=body, headers={"X-API-Key": self.api_key}
        )
        if answer.status_code != 202:
            raise RuntimeError(f"POST /v1/alerts answered {answer.status_code}: {answer.text}")
        alert_id: str = answer.json()["id"]
        return alert_id

    async def cancel(self, alert_id: str) -> None:
        """POST /v1/alerts/{id}/cancel and wait for its answer."""
        answer = await self._client.post(
            f"{self.gateway_url}/v1/alerts/{alert_id}/cancel", headers={"X-API-Key": self.api_key}
        )
        if answer.status_code != 200:
            raise RuntimeError(f"cancel answered {answer.status_code}: {answer.text}")

    # PostgreSQL

    async def _fetch(self, query: str, alert_id: str) -> Any:
        connection = await asyncpg.connect(self.bench.dsn, timeout=5)
        try:
            return await connection.fetchrow(query, uuid.UUID(alert_id))
        finally:
            await connection.close()

    async def wait_terminal(self, alert_id: str, limit: float, stall: float = 90.0) -> str:
        """Poll until the alert ends; its final status. Survives a database restart.

        `TimeoutError` after `limit` seconds, or when the sandbox accepted nothing more for
        `stall` seconds while the alert had not ended (a lost shard, a wedged sender).
        """
        started = time.monotonic()
        progress = (-1, started)  # (accepted, when it last changed)
        while time.monotonic() - started < limit:
            try:
                row = await self._fetch("SELECT status FROM alerts WHERE id = $1", alert_id)
                status = "unknown" if row is None else str(row["status"])
            except (TimeoutError, OSError, asyncpg.PostgresError):
                status = "unreachable"
            if status in TERMINAL:
                return status
            accepted = int((await self.provider.ledger(alert_id))["accepted"])
            now = time.monotonic()
            if accepted != progress[0]:
                progress = (accepted, now)
            elif now - progress[1] > stall:
                raise TimeoutError(
                    f"Alert {alert_id} is {status} but the sandbox accepted nothing more for "
                    f"{stall:.0f} s ({accepted} accepted)."
                )
            await asyncio.sleep(0.25)
        raise TimeoutError(f"Alert {alert_id} did not end within {limit:.0f} s.")

    async def broadcaster_delivered(self, alert_id: str) -> int:
        """`alerts.delivered` of an alert: the recipients the broadcaster settled as delivered."""
        row = await self._fetch("SELECT delivered FROM alerts WHERE id = $1", alert_id)
        return 0 if row is None else int(row["delivered"])

    async def analytics_delivered(self, alert_id: str) -> int | None:
        """`alert_stats.delivered` of an alert, or None before analytics saw it."""
        row = await self._fetch("SELECT delivered FROM alert_stats WHERE alert_id = $1", alert_id)
        return None if row is None else int(row["delivered"])

    async def read_counts(self, alert_id: str) -> tuple[int, int]:
        """(delivered, readers) of an alert in analytics' rollup; zeros before it has one."""
        row = await self._fetch(
            "SELECT delivered, readers FROM alert_stats WHERE alert_id = $1", alert_id
        )
        return (0, 0) if row is None else (int(row["delivered"]), int(row["readers"]))

    async def never_accepted(self, alert_id: str) -> set[str]:
        """Active subscribers in PostgreSQL that the ledger never accepted for `alert_id`."""
        accepted = await self.ledger_recipients(alert_id)
        connection = await asyncpg.connect(self.bench.dsn)
        try:
            never: set[str] = set()
            async with connection.transaction():
                cursor = connection.cursor(
                    "SELECT recipient_no FROM subscribers WHERE status = 'active'"
                )
                async for row in cursor:
                    if row["recipient_no"] not in accepted:
                        never.add(row["recipient_no"])
        finally:
            await connection.close()
        return never

    async def failures_listed(self, alert_id: str) -> set[str]:
        """The recipients the gateway's failures route lists for `alert_id` (its CSV)."""
        answer = await self._client.get(
            f"{self.gateway_url}/v1/alerts/{alert_id}/recipients",
            params={"outcome": "failed"},
            headers={"X-API-Key": self.api_key, "Accept": "text/csv"},
            timeout=120.0,
        )
        answer.raise_for_status()
        rows = answer.text.splitlines()[1:]
        return {row.split(",", 1)[0] for row in rows if row}

    async def hold(self, alert_id: str, action: str) -> None:
        """POST /v1/alerts/{id}/pause or /resume and wait for its answer."""
        answer = await self._client.post(
            f"{self.gateway_url}/v1/alerts/{alert_id}/{action}",
            headers={"X-API-Key": self.api_key},
        )
        if answer.status_code != 200:
            raise RuntimeError(f"{action} answered {answer.status_code}: {answer.text}")

    async def shards_paused(self) -> float:
        """The shards every sender holds paused, from their /metrics."""
        held = 0.0
        for service in self.sender_services:
            assert service.ready_url is not None
            text = (await self._client.get(service.ready_url, timeout=5.0)).text
            for line in text.splitlines():
                if line.startswith("allim_broadcaster_shards_paused "):
                    held += float(line.split()[1])
        return held


@contextlib.asynccontextmanager
async def running_system(system: System) -> AsyncIterator[System]:
    """Start `system`, and stop it on the way out, also on errors."""
    try:
        await system.start()
        yield system
    finally:
        await system.stop()
