"""How cost grows with the audience, and the same broadcast with 1, 2 and 3 sender processes.

    .venv/bin/python bench/scale.py [--quick]

1. Senders: one broadcast to `S` subscribers (1,000,000; quick 100,000) with a planner and
   1, then 2, then 3 sender processes (`allim broadcaster --role sender`), one after the
   other on the same stack and the same sandbox, no rate limit. `senders_<n>_vs_1` is the
   speed-up over one sender measured side by side in this run; on a 2-core machine the
   extra processes share the same two cores.
2. Audience: with one sender, broadcasts to 100,000 up to 5,000,000 subscribers (quick:
   100,000 and 200,000), the audience grown by COPY between them. Per size: seconds from
   handing the alert over to the sandbox accepting its last batch, recipients/s, and the CPU
   seconds the broadcaster processes spent per 100,000 recipients (user + system time from
   /proc), which is what the broadcast costs whatever the machine's speed.

3. Read rate over time: an alert to 100,000 subscribers, sampled for 60 s (quick: 20,000 for
   30 s), through the whole system (gateway, broadcaster, analytics) with the sandbox's
   recipient simulator on, profile `typical`, its clock 360 (quick 720) times faster than real
   time; analytics' readers / delivered every 0.5 s from the first delivery it counted
   (`series_read_rate`, `read_rate_final`).

Figures: senders_<n>_seconds, senders_<n>_recipients_per_s, senders_2_vs_1, senders_3_vs_1,
scale_seconds_<size>, scale_recipients_per_s_<size>, scale_cpu_s_per_100k_<size>,
scale_duplicates, read_rate_final, series_read_rate.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from _stack import (
    WARMUP_TAG,
    Alerts,
    Sandbox,
    Stack,
    alerts,
    load_subscribers,
    log,
    parse_args,
    report,
    sandbox_client,
    stack,
    warm_up,
)
from chaos import System, running_system
from cli.processes import Service
from common.messages import Audience
from raw_limit import size_name
from reports.figures import read_rate

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    # fields after the command: state is [0], utime [11], stime [12]
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def timed_broadcast(
    bench: Stack, posting: Alerts, sandbox: Sandbox, services: tuple[Service, ...]
) -> tuple[float, float, int]:
    """One alert to everyone: (seconds to the last accepted batch, CPU seconds, duplicates)."""
    await sandbox.reset()
    cpu_before = sum(cpu_seconds(s.pid) for s in services)
    alert_id, handed_over = await posting.post(Audience(all=True))
    ledger = await sandbox.wait_for(alert_id, bench.subscribers, 1800.0, services)
    cpu = sum(cpu_seconds(s.pid) for s in services) - cpu_before
    seconds = float(ledger["last_accepted_at"]) - handed_over
    await sandbox.reset()
    return seconds, cpu, int(ledger["duplicates"])


async def read_rate_series(audience: int, seconds: float, time_scale: float) -> dict[str, Any]:
    """Readers / delivered of one alert, every second for `seconds`, simulator on."""
    async with stack("readrate") as bench:
        await load_subscribers(bench, audience)
        system = System(bench, senders=1, analytics=True)
        async with running_system(system):
            await system.provider.configure(profile="typical", time_scale=time_scale, seed=7)
            alert_id = await system.post_alert("read rate")
            # people read relative to when they got the message: the clock starts at the
            # first delivery analytics counted, not at the POST
            deadline = time.monotonic() + 120
            while (await system.read_counts(alert_id))[0] == 0:
                if time.monotonic() > deadline:
                    raise TimeoutError("Analytics counted no delivery within 120 s.")
                await asyncio.sleep(0.2)
            delivered_at = time.monotonic()
            times: list[float] = []
            rates: list[float] = []
            while (elapsed := time.monotonic() - delivered_at) < seconds:
                delivered, readers = await system.read_counts(alert_id)
                rate = read_rate(readers, delivered)
                assert rate is not None  # deliveries were counted before, and only grow
                times.append(round(elapsed, 2))
                rates.append(round(rate, 4))
                await asyncio.sleep(0.5)
            log("read rate after %.0f s (x%g): %.3f", seconds, time_scale, rates[-1])
    return {"t_s": times, "read_rate": rates, "time_scale": time_scale, "profile": "typical"}


async def main() -> None:
    args = parse_args("How cost grows with the audience; 1, 2 and 3 sender processes.")
    senders_size = 100_000 if args.quick else 1_000_000
    sizes = (
        [100_000, 200_000] if args.quick else [100_000, 450_000, 1_000_000, 2_500_000, 5_000_000]
    )
    figures: dict[str, Any] = {"scale_sizes": ",".join(map(str, sizes))}
    duplicates = 0
    async with stack("scale") as bench:
        await load_subscribers(bench, 10, (WARMUP_TAG,))
        bench.start_sandbox()
        planner = bench.start_broadcaster("planner", 0)
        senders = [bench.start_broadcaster("sender", 1)]
        async with sandbox_client(bench) as sandbox, alerts(bench) as posting:
            await warm_up(bench, posting, sandbox, (planner, *senders))
            for size in sizes:
                await load_subscribers(bench, size - bench.subscribers)
                seconds, cpu, dups = await timed_broadcast(
                    bench, posting, sandbox, (planner, *senders)
                )
                duplicates += dups
                name = size_name(size)
                figures[f"scale_seconds_{name}"] = round(seconds, 3)
                figures[f"scale_recipients_per_s_{name}"] = round(size / seconds)
                figures[f"scale_cpu_s_per_100k_{name}"] = round(cpu * 100_000 / size, 3)
                log("%d recipients: %.2f s, %.1f CPU s", size, seconds, cpu)
                if size != senders_size:
                    continue
                # the same broadcast with 2 and 3 sender processes, beside the one above
                figures["senders_1_seconds"] = round(seconds, 3)
                figures["senders_1_recipients_per_s"] = round(size / seconds)
                for count in (2, 3):
                    senders.append(bench.start_broadcaster("sender", count))
                    # the group rebalances as the new member joins: let it settle first
                    await warm_up(bench, posting, sandbox, (planner, *senders))
                    await asyncio.sleep(3)
                    more, _, dups = await timed_broadcast(
                        bench, posting, sandbox, (planner, *senders)
                    )
                    duplicates += dups
                    figures[f"senders_{count}_seconds"] = round(more, 3)
                    figures[f"senders_{count}_recipients_per_s"] = round(size / more)
                    figures[f"senders_{count}_vs_1"] = round(seconds / more, 3)
                    log("%d senders: %d recipients in %.2f s", count, size, more)
                while len(senders) > 1:
                    await asyncio.to_thread(senders.pop().stop)
                await warm_up(bench, posting, sandbox, (planner, *senders))
                await asyncio.sleep(3)
    figures["scale_duplicates"] = duplicates
    if args.quick:
        series = await read_rate_series(20_000, 30.0, 720.0)
    else:
        series = await read_rate_series(100_000, 60.0, 360.0)
    figures["read_rate_final"] = series["read_rate"][-1]
    report({**figures, "series_read_rate": series})


if __name__ == "__main__":
    asyncio.run(main())
