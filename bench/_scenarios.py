"""The failure scenarios `make chaos` runs: what each one breaks while a broadcast is sent.

`Broadcast` is the alert being sent during a scenario: when it was posted, how long the clean
run took, and what the disruption noted, found and killed on the way (`at` sleeps until a share
of that duration, `kill_and_restart` SIGKILLs a process and starts it again). A `Scenario` is a
named failure, its disruption, and what its verdict must check: whether it needs the stack's
state folder, checks analytics' count, cancels, lists failures or falls back to SMS. The
disruptions SIGKILL senders at random moments, the planner while it plans, or analytics; stop
and start the stack's Kafka broker or PostgreSQL server (`_restart`, which needs the state
folder that `bench_state` finds in ALLIM_BENCH_STATE); make the sandbox answer 5xx, 429 storms,
connection resets and stalls, or refuse recipients for good; pause, SIGKILL every sender and
resume; or cancel midway. `SCENARIOS` is the full run, in order, the clean reference first;
`QUICK_SCENARIOS` the short one (`--quick`). The random moments come from the runner's seeded
`random.Random`.

`bench/chaos.py` runs them and judges them; what they break is `_system.System`.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _system import System, stack_script
from cli.processes import Service


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
