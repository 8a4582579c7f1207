"""`make chaos`: failure scenarios during a broadcast, counted at the sandbox's ledger.

    .venv/bin/python bench/chaos.py [--quick] [--only NAME ...] [--audience N] [--rate R]
                                    [--out FILE]

One database of its own (`allim_bench_chaos_*` on the server of ALLIM_DATABASE_URL, created
fresh and migrated), filled with the audience, and the whole system as child processes (sandbox,
gateway, a planner, sender processes, analytics). Each scenario posts one alert to everyone
and breaks something while it is sent; at the end it counts, at the sandbox's ledger,
duplicates (recipients accepted more than once) and missing recipients (active subscribers
in PostgreSQL the ledger never accepted), and the time from POST to the alert's end against
the clean run. The sandbox is rate-limited (`--rate`) so the broadcast lasts long enough to
break things in the middle of it. Restarting Kafka and PostgreSQL needs the stack's state
folder (ALLIM_BENCH_STATE, which `make chaos` sets). Results go into bench/results.json
("chaos") and docs/benchmarks.md ("Failures survived"), or into FILE alone with `--out` (the
test suite's run); the exit status is 1 when a scenario found a duplicate or a missing
recipient, or failed. Where a scenario checks analytics, analytics' delivered count of the
alert must equal the broadcaster's and the ledger's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

import _stack
import report
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


# --- the system under test ------------------------------------------------------------------


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
    sandbox: _stack.Sandbox | None = None
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
        self.sandbox = _stack.Sandbox(self._client, self.bench.sandbox_url)

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
    def provider(self) -> _stack.Sandbox:
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


# --- scenarios ------------------------------------------------------------------------------


@dataclass
class Broadcast:
    """One alert being sent during a scenario."""

    alert_id: str
    posted: float  # time.monotonic() when POST returned
    expected_seconds: float  # how long the clean run took (or an estimate)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what the disruption itself found
    kills: list[float] = field(default_factory=list)  # seconds after the POST
    cancel_returned_at: float | None = None  # unix time

    def since_post(self) -> float:
        """Seconds since the POST returned."""
        return time.monotonic() - self.posted

    async def kill_and_restart(self, system: System, service: Service) -> None:
        """SIGKILL `service` (noting when), then start it again."""
        self.kills.append(self.since_post())
        self.notes.append(f"SIGKILL {service.name} at {self.since_post():.1f} s")
        await system.kill_and_restart(service)

    async def at(self, share: float) -> None:
        """Sleep until `share` of the expected duration after the POST."""
        delay = self.posted + share * self.expected_seconds - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


Disrupt = Callable[[System, Broadcast, random.Random], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class Scenario:
    """A named failure and what it does during a broadcast."""

    name: str
    description: str
    disrupt: Disrupt | None
    needs_state: bool = False
    checks_analytics: bool = False
    cancels: bool = False
    # the sandbox refuses some recipients for good and the alert does not fall back: the
    # failures route must list exactly those the ledger never accepted
    lists_failures: bool = False
    # KakaoTalk refuses some recipients and the SMS dealer takes them: both ledgers counted
    falls_back: bool = False


async def _kill_senders(system: System, run: Broadcast, rng: random.Random, times: int) -> None:
    moments = sorted(rng.uniform(0.15, 0.75) for _ in range(times))
    for moment in moments:
        await run.at(moment)
        await run.kill_and_restart(system, rng.choice(system.sender_services))


async def kill_sender_three_times(system: System, run: Broadcast, rng: random.Random) -> None:
    """SIGKILL a random sender at three random moments, restarting it each time."""
    await _kill_senders(system, run, rng, 3)


async def kill_sender_once(system: System, run: Broadcast, rng: random.Random) -> None:
    """SIGKILL a random sender once, mid-broadcast, and restart it."""
    await _kill_senders(system, run, rng, 1)


async def kill_planner(system: System, run: Broadcast, rng: random.Random) -> None:
    """SIGKILL the planner in the first second after the POST (while it plans), restart it."""
    await asyncio.sleep(rng.uniform(0.05, 1.0))
    await run.kill_and_restart(system, system.service("broadcaster-planner-0"))


async def kill_analytics(system: System, run: Broadcast, rng: random.Random) -> None:
    """SIGKILL analytics mid-broadcast and restart it."""
    await run.at(rng.uniform(0.2, 0.7))
    await run.kill_and_restart(system, system.service("analytics"))


def _restart(kind: str, pause: float) -> Disrupt:
    async def disrupt(system: System, run: Broadcast, rng: random.Random) -> None:
        state = bench_state()
        assert state is not None  # scenarios that need it are skipped without it
        await run.at(rng.uniform(0.2, 0.5))
        began = time.monotonic()
        await asyncio.to_thread(stack_script, kind, "stop", state)
        await asyncio.sleep(pause)
        await asyncio.to_thread(stack_script, kind, "start", state)
        run.notes.append(
            f"{kind} down from {began - run.posted:.1f} s for {time.monotonic() - began:.1f} s"
        )

    return disrupt


async def provider_errors_then_429(system: System, run: Broadcast, rng: random.Random) -> None:
    """30% 5xx for 20 s, then 10 s of 429 storms (1 request/s allowed) with Retry-After;
    1.6% of recipients refused for good throughout (3018, 3019), as a real channel's are."""
    await system.provider.configure(inactive_share=0.012, non_kakao_share=0.004)
    try:
        await run.at(0.1)
        await system.provider.configure(server_error_share=0.3)
        await asyncio.sleep(20)
        await system.provider.configure(
            server_error_share=0.0, requests_per_second=1.0, burst_seconds=1.0
        )
        await asyncio.sleep(10)
        await system.provider.configure(requests_per_second=0.0)
        run.notes.append("30% 5xx for 20 s, then 429 storm for 10 s")
    finally:
        # who was refused is settled when their batch went: the later ones are accepted
        await system.provider.configure(inactive_share=0.0, non_kakao_share=0.0)


async def resets_and_stalls(system: System, run: Broadcast, rng: random.Random) -> None:
    """For 20 s: 10% of sends reset the connection, 5% stall 10 s (half after acceptance)."""
    await run.at(0.1)
    await system.provider.configure(
        reset_share=0.10, timeout_share=0.05, hang_seconds=10.0, fault_after_accept_share=0.5
    )
    await asyncio.sleep(20)
    await system.provider.configure(reset_share=0.0, timeout_share=0.0)
    run.notes.append("10% resets and 5% 10-second stalls for 20 s")


async def pause_kill_resume(system: System, run: Broadcast, rng: random.Random) -> None:
    """Pause through the gateway mid-broadcast, SIGKILL every sender and restart them; once
    they hold the alert again, check the ledger took nothing after the pause, then resume."""
    await run.at(rng.uniform(0.2, 0.4))
    await system.hold(run.alert_id, "pause")
    paused_at = time.time()
    run.notes.append(f"paused at {run.since_post():.1f} s")
    for sender in system.sender_services:
        await run.kill_and_restart(system, sender)
    started = time.monotonic()
    while await system.shards_paused() < 1:
        if time.monotonic() - started > 60:
            run.problems.append("no restarted sender held the paused alert within 60 s")
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(2.0)  # the held senders' chance to send, which they must not take
    last = (await system.provider.ledger(run.alert_id)).get("last_accepted_at")
    if last is not None and last > paused_at + 1.0:
        run.problems.append(f"accepted a batch {last - paused_at:.2f} s after the pause returned")
    await system.hold(run.alert_id, "resume")
    run.notes.append(f"resumed at {run.since_post():.1f} s")


async def fallback_faults_and_sigkill(system: System, run: Broadcast, rng: random.Random) -> None:
    """KakaoTalk refuses 5% for good (so they go by SMS) and fails 20% of requests with 5xx;
    the SMS dealer fails 20% with 5xx and resets 5%; a sender is SIGKILLed meanwhile."""
    provider = system.provider
    await provider.configure(inactive_share=0.03, non_kakao_share=0.02, server_error_share=0.2)
    await provider.configure_sms(server_error_share=0.2, reset_share=0.05)
    try:
        await run.at(rng.uniform(0.3, 0.6))
        await run.kill_and_restart(system, rng.choice(system.sender_services))
        await run.at(0.9)
    finally:
        # who went by SMS was settled when their batch went: later ones are accepted
        await provider.configure(inactive_share=0.0, non_kakao_share=0.0, server_error_share=0.0)
        await provider.configure_sms(server_error_share=0.0, reset_share=0.0)
    run.notes.append("5% refused by KakaoTalk, 5xx on both channels, a sender SIGKILLed")


async def cancel_midway(system: System, run: Broadcast, rng: random.Random) -> None:
    """Cancel through the gateway at a random moment mid-broadcast."""
    await run.at(rng.uniform(0.3, 0.6))
    await system.cancel(run.alert_id)
    run.cancel_returned_at = time.time()
    run.notes.append(f"cancel returned at {time.monotonic() - run.posted:.1f} s")


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("clean", "no failure: the reference run", None, checks_analytics=True),
    Scenario(
        "sender_sigkill_x3",
        "SIGKILL of a sender at three random moments (restarted each time)",
        kill_sender_three_times,
    ),
    Scenario("planner_sigkill", "SIGKILL of the planner while it plans", kill_planner),
    Scenario(
        "analytics_sigkill",
        "SIGKILL of analytics mid-broadcast; its delivered count must still be exact",
        kill_analytics,
        checks_analytics=True,
    ),
    Scenario(
        "kafka_restart",
        "Kafka broker stopped and started again mid-broadcast",
        _restart("kafka", 2.0),
        needs_state=True,
    ),
    Scenario(
        "postgres_restart",
        "PostgreSQL stopped and started again mid-broadcast",
        _restart("postgres", 2.0),
        needs_state=True,
    ),
    Scenario(
        "provider_5xx_then_429",
        "provider answers 30% 5xx for 20 s, then 429 storms with Retry-After; the failures "
        "route lists exactly the recipients the ledger never accepted",
        provider_errors_then_429,
        lists_failures=True,
    ),
    Scenario(
        "fallback_faults_sigkill",
        "KakaoTalk refuses 5% (sent by SMS), 5xx on both channels, a sender SIGKILLed: "
        "0 duplicates on each channel's ledger, and everyone reached once by one of them",
        fallback_faults_and_sigkill,
        falls_back=True,
    ),
    Scenario(
        "pause_sigkill_resume",
        "pause mid-broadcast, SIGKILL every sender, restart, resume: nothing accepted while paused",
        pause_kill_resume,
    ),
    Scenario(
        "resets_and_stalls",
        "provider resets 10% of connections and stalls 5% for 10 s, for 20 s",
        resets_and_stalls,
    ),
    Scenario(
        "cancel",
        "cancel mid-broadcast: nothing accepted later than 1 s after the cancel returned",
        cancel_midway,
        cancels=True,
    ),
)
QUICK_SCENARIOS: tuple[Scenario, ...] = (
    SCENARIOS[0],
    Scenario(
        "sender_sigkill",
        "SIGKILL of a sender once mid-broadcast; analytics counts what was delivered",
        kill_sender_once,
        checks_analytics=True,
    ),
)


def bench_state() -> Path | None:
    """The data stack's state folder (for restarting Kafka and PostgreSQL), when known."""
    value = os.environ.get("ALLIM_BENCH_STATE")
    return Path(value) if value else None


@dataclass
class Outcome:
    """What one scenario measured."""

    name: str
    description: str
    duplicates: int = 0
    missing: int | None = 0
    accepted: int = 0
    seconds: float | None = None
    vs_clean: float | None = None
    status: str = ""
    ok: bool = False
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    kills: list[float] = field(default_factory=list)
    # where the scenario checks analytics: the delivered count of each side
    broadcaster_delivered: int | None = None
    analytics_delivered: int | None = None

    def line(self) -> str:
        """A line for the terminal."""
        missing = "n/a" if self.missing is None else str(self.missing)
        took = f"{self.seconds:.1f} s" if self.seconds is not None else "-"
        ratio = f" ({self.vs_clean:.2f}x clean)" if self.vs_clean is not None else ""
        verdict = "ok" if self.ok else f"FAILED: {self.error}"
        return (
            f"{self.name}: duplicates {self.duplicates}, missing {missing}, "
            f"accepted {self.accepted}, {took}{ratio}, {self.status}: {verdict}"
        )


async def run_scenario(
    system: System,
    scenario: Scenario,
    audience: int,
    expected_seconds: float,
    rng: random.Random,
    limit: float,
) -> Outcome:
    """Post one alert, break what the scenario breaks, and count at the ledger.

    An alert that does not end in time is still counted: what the ledger holds then is
    what was delivered, and the rest is missing.
    """
    outcome = Outcome(scenario.name, scenario.description)
    problems: list[str] = []
    try:
        system.check_alive()
        started = time.monotonic()
        alert_id = await system.post_alert(
            f"chaos {scenario.name}", fallback=not scenario.lists_failures
        )
        run = Broadcast(alert_id, time.monotonic(), expected_seconds)
        disruption: asyncio.Task[None] | None = None
        if scenario.disrupt is not None:
            disruption = asyncio.create_task(scenario.disrupt(system, run, rng))
        try:
            outcome.status = await system.wait_terminal(alert_id, limit)
            outcome.seconds = time.monotonic() - started
            if disruption is not None:
                await disruption  # it may still be restoring what it broke
        except TimeoutError as exc:
            outcome.status = "did not end"
            problems.append(str(exc))
        finally:
            if disruption is not None and not disruption.done():
                disruption.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await disruption
        outcome.notes = run.notes
        outcome.kills = run.kills
        if outcome.seconds is not None and any(k > outcome.seconds for k in run.kills):
            run.notes.append("a kill came after the alert had ended")
        await asyncio.sleep(1.0)  # late answers of requests still in flight reach the ledger
        ledger = await system.provider.ledger(alert_id)
        outcome.duplicates = int(ledger["duplicates"])
        outcome.accepted = int(ledger["accepted"])
        if scenario.cancels:
            outcome.missing = None
            if outcome.status != "cancelled":
                problems.append(f"ended {outcome.status}, not cancelled")
            last = ledger.get("last_accepted_at")
            if run.cancel_returned_at is None:
                problems.append("the cancel was never sent")
            elif last is not None and last > run.cancel_returned_at + 1.0:
                after = last - run.cancel_returned_at
                problems.append(f"accepted a batch {after:.2f} s after the cancel returned")
        else:
            never = await system.never_accepted(alert_id)
            # any alert may fall back (public alerts do by default): both ledgers count
            by_sms = await system.provider.sms_ledger_recipients(alert_id)
            sms = await system.provider.sms_ledger(alert_id)
            outcome.duplicates += int(sms["duplicates"])
            both = by_sms - never  # accepted by KakaoTalk too: reached twice
            if by_sms or scenario.falls_back:
                run.notes.append(f"{len(by_sms)} reached by SMS/LMS")
            if both:
                problems.append(f"{len(both)} reached by both channels")
            if scenario.falls_back and not by_sms:
                problems.append("nobody went by SMS: the fallback was not exercised")
            never -= by_sms
            if scenario.lists_failures:
                listed = await system.failures_listed(alert_id)
                run.notes.append(f"{len(listed)} refused for good, listed as failures")
                if listed != never:
                    problems.append(
                        f"the failures route lists {len(listed)}, the ledger never accepted "
                        f"{len(never)}: {len(listed - never)} listed but accepted, "
                        f"{len(never - listed)} not accepted and not listed"
                    )
                never -= listed
            outcome.missing = len(never)
            if outcome.status not in ("completed", "did not end"):
                problems.append(f"ended {outcome.status}")
        problems.extend(run.problems)
        if scenario.checks_analytics:
            delivered = await system.broadcaster_delivered(alert_id)
            counted = await _analytics_catch_up(system, alert_id, delivered)
            outcome.broadcaster_delivered, outcome.analytics_delivered = delivered, counted
            if not counted == delivered == outcome.accepted:
                problems.append(
                    f"delivered: analytics counts {counted}, the broadcaster {delivered}, "
                    f"the ledger {outcome.accepted}"
                )
        if outcome.duplicates:
            problems.append(f"{outcome.duplicates} duplicates: {ledger['duplicate_recipients']}")
        if outcome.missing:
            problems.append(f"{outcome.missing} missing")
    except Exception as exc:  # a scenario that breaks is reported, and the next one runs
        logger.exception("scenario %s failed", scenario.name)
        problems.append(f"{type(exc).__name__}: {exc}")
    outcome.ok = not problems
    outcome.error = "; ".join(problems) or None
    return outcome


async def _analytics_catch_up(system: System, alert_id: str, expected: int) -> int | None:
    deadline = time.monotonic() + 60
    counted = None
    while time.monotonic() < deadline:
        counted = await system.analytics_delivered(alert_id)
        if counted == expected:
            break
        await asyncio.sleep(0.5)
    return counted


async def send_rate_series(system: System, since: float, limit: float) -> dict[str, Any]:
    """Recipients the sandbox accepted per second since unix time `since`, for the chart."""
    points = [
        (s, n) for s, n in (await system.provider.stats())["accepted_per_second"] if s >= since
    ]
    start = int(since)
    return {
        "t_s": [s - start for s, _ in points],
        "per_s": [n for _, n in points],
        "limit_per_s": limit,
    }


@dataclass
class ChaosConfig:
    """How big the broadcast is, how fast the sandbox lets it go, and what to break."""

    audience: int
    rate: float
    senders: int
    scenarios: tuple[Scenario, ...]
    seed: int = 7


async def run_chaos(config: ChaosConfig) -> dict[str, Any]:
    """Every scenario of `config`, in order, on a fresh database; results.json's "chaos"."""
    state = bench_state()
    rng = random.Random(config.seed)
    outcomes: list[Outcome] = []
    data: dict[str, Any] = {}
    async with _stack.stack("chaos") as bench:
        await _stack.load_subscribers(bench, config.audience)
        system = System(
            bench,
            senders=config.senders,
            analytics=any(s.checks_analytics for s in config.scenarios),
            rate=config.rate,
            # enough shards that every sender has work when one is killed
            shard_size=min(20_000, max(1_000, config.audience // 16)),
        )
        expected = config.audience / config.rate
        clean: float | None = None
        async with running_system(system):
            for scenario in config.scenarios:
                if scenario.needs_state and state is None:
                    skipped = Outcome(scenario.name, scenario.description, missing=None)
                    skipped.error = "skipped: ALLIM_BENCH_STATE (the stack's folder) is not set"
                    outcomes.append(skipped)
                    print(skipped.line(), flush=True)
                    continue
                since = time.time()
                outcome = await run_scenario(
                    system, scenario, config.audience, clean or expected, rng, 20 * expected + 300
                )
                if scenario.name == "clean" and outcome.seconds is not None:
                    clean = outcome.seconds
                    data["series_send_rate"] = await send_rate_series(system, since, config.rate)
                if clean and outcome.seconds is not None:
                    outcome.vs_clean = outcome.seconds / clean
                outcomes.append(outcome)
                print(outcome.line(), flush=True)
                # a scenario may leave a process dead (a failed restart): bring it back
                for service in system.group.services:
                    if not service.alive():
                        await asyncio.to_thread(service.start)
                        await asyncio.to_thread(service.wait_ready, 90.0)
    counted = [o for o in outcomes if not (o.error or "").startswith("skipped")]
    figures: dict[str, float] = {
        "chaos_duplicates": sum(o.duplicates for o in counted),
        "chaos_missing": sum(o.missing or 0 for o in counted),
        "chaos_failed_scenarios": sum(1 for o in counted if not o.ok),
    }
    for outcome in counted:
        if outcome.seconds is not None:
            figures[f"chaos_{outcome.name}_seconds"] = round(outcome.seconds, 2)
    clean_outcome = next((o for o in outcomes if o.name == "clean"), None)
    return {
        "audience": config.audience,
        "rate_per_s": config.rate,
        "senders": config.senders,
        "broadcaster_stall_seconds": system.stall_seconds,
        "clean_seconds": clean_outcome.seconds if clean_outcome else None,
        "scenarios": [
            {
                "name": o.name,
                "description": o.description,
                "duplicates": o.duplicates,
                "missing": o.missing,
                "accepted": o.accepted,
                "seconds": o.seconds,
                "vs_clean": o.vs_clean,
                "status": o.status,
                "ok": o.ok,
                "error": o.error,
                "notes": o.notes,
                "kills_s": [round(k, 2) for k in o.kills],
                "broadcaster_delivered": o.broadcaster_delivered,
                "analytics_delivered": o.analytics_delivered,
            }
            for o in outcomes
        ],
        "figures": figures,
        "data": data,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios, record them; 1 when one found a duplicate or a missing recipient."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 subscribers, one SIGKILL")
    parser.add_argument("--audience", type=int, help="subscribers (default 450,000; quick 20,000)")
    parser.add_argument(
        "--rate", type=float, help="sandbox messages/s (default 10,000; quick 4,000)"
    )
    parser.add_argument("--senders", type=int, default=2, help="sender processes (default 2)")
    names = [s.name for s in SCENARIOS + QUICK_SCENARIOS]
    parser.add_argument("--only", nargs="+", choices=names, help="run these scenarios only")
    parser.add_argument("--seed", type=int, default=7, help="seed of the random moments")
    parser.add_argument("--command", help="the command to print in the report")
    parser.add_argument(
        "--out",
        type=Path,
        help="write the run's results to this JSON file, not to results.json and the report",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s chaos %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    audience = args.audience or (20_000 if args.quick else 450_000)
    rate = args.rate or (4_000.0 if args.quick else 10_000.0)
    if audience < 1 or rate <= 0 or args.senders < 1:
        raise SystemExit("--audience, --rate and --senders must be positive.")
    scenarios = QUICK_SCENARIOS if args.quick else SCENARIOS
    if args.only:
        chosen = {s.name: s for s in SCENARIOS + QUICK_SCENARIOS}
        scenarios = tuple(chosen[name] for name in ["clean", *args.only] if name in chosen)
        scenarios = tuple(dict.fromkeys(scenarios))
    config = ChaosConfig(audience, rate, args.senders, scenarios, seed=args.seed)
    chaos = asyncio.run(run_chaos(config))
    chaos["command"] = args.command or " ".join(["python", "bench/chaos.py", *sys.argv[1:]])
    chaos["quick"] = args.quick
    chaos["finished_at"] = report.utc_now()
    if args.out:
        args.out.write_text(report.dumps(chaos), encoding="utf-8")
    else:
        results = report.load_results()
        # a short run (make bench, CI's size) never hides the last full one
        results["chaos_short" if args.quick else "chaos"] = chaos
        results["figures"] = report.flat_figures(results)
        results.setdefault("machine", report.machine())
        report.save_results(results)
        report.write_report(results)
    print(report.dumps(chaos["figures"]))
    return 0 if chaos["figures"]["chaos_failed_scenarios"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
