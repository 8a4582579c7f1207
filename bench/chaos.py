"""`make chaos`: failure scenarios during a broadcast, counted at the sandbox's ledger.

    .venv/bin/python bench/chaos.py [--quick] [--only NAME ...] [--audience N] [--rate R]
                                    [--out FILE]

The runner and its verdicts; the scenarios, what each breaks and when, are in `_scenarios.py`.
One database of its own (`allim_bench_chaos_*` on the server of ALLIM_DATABASE_URL, created
fresh and migrated), filled with the audience, and the whole system as child processes
(sandbox, gateway, a planner, sender processes, analytics: `_system.System`). For each scenario
it posts one alert to everyone, lets the scenario break something while it is sent, and then
counts, at the sandbox's ledger, duplicates (recipients accepted more than once) and missing
recipients (active subscribers in PostgreSQL the ledger never accepted), and the time from POST
to the alert's end against the clean run. The sandbox is rate-limited (`--rate`) so the
broadcast lasts long enough to break things in the middle of it. Scenarios that restart Kafka
and PostgreSQL are skipped without the stack's state folder (ALLIM_BENCH_STATE, which
`make chaos` sets). Results go into bench/results.json ("chaos") and docs/benchmarks.md
("Failures survived"), or into FILE alone with `--out` (the test suite's run); the exit status
is 1 when a scenario found a duplicate or a missing recipient, or failed. Where a scenario
checks analytics, analytics' delivered count of the alert must equal the broadcaster's and the
ledger's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _results
import _stack
import report
from _scenarios import QUICK_SCENARIOS, SCENARIOS, Broadcast, Scenario, bench_state
from _system import System, running_system

logger = logging.getLogger("chaos")


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
    chaos["finished_at"] = _results.utc_now()
    if args.out:
        args.out.write_text(_results.dumps(chaos), encoding="utf-8")
    else:
        results = _results.load_results()
        # a short run (make bench, CI's size) never hides the last full one
        results["chaos_short" if args.quick else "chaos"] = chaos
        results["figures"] = _results.flat_figures(results)
        results.setdefault("machine", _results.machine())
        _results.save_results(results)
        report.write_report(results)
    print(_results.dumps(chaos["figures"]))
    return 0 if chaos["figures"]["chaos_failed_scenarios"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
