"""Fan-out throughput end to end, beside the raw limit in the same run.

For each audience size: the alert is POSTed to `allim gateway` like an operator does, and the
figure is the time from that POST until the sandbox accepted its last batch, with no rate
limit anywhere (one `allim broadcaster --role all` process). Right before and right after, the
raw loop of `raw_limit.py` posts the same subscribers to the same sandbox with no Kafka and no
bookkeeping; the ratio of the raw loop's mean time to the broadcaster's is how close the
broadcaster gets to what the machine can do. Timing the raw loop on both sides cancels what
drifts on a shared machine meanwhile (as the load's checkpoint once did, landing on whichever
ran first). At 1M the broadcast is timed in three rounds (`ROUNDS`).

Beside the times, the CPU seconds (user + system, from /proc) each side spent: the
broadcaster process from the POST to the last accepted batch, the raw loop's process for its
loop (this script's own process). Both sides are bound by their CPU, so their ratio follows
the time ratio; it says how much more work the broadcaster does for the same sending, apart
from waiting. It swings with the host much as the times do: on a shared core the same code
takes more CPU seconds.

    .venv/bin/python bench/fanout.py [--quick]     # 100k, 450k, 1M and 10M (quick: to 1M)

Figures: fanout_seconds_<size>, raw_limit_seconds_<size>, fanout_recipients_per_s_<size>,
fanout_ratio_vs_raw_<size>, fanout_ratio_vs_raw (at 1M), fanout_cpu_s_<size>, raw_cpu_s_<size>,
fanout_cpu_ratio_vs_raw_<size> (of the same round as the times), fanout_duplicates.
"""

from __future__ import annotations

import statistics
import time

import httpx
import uvloop

from _clients import GatewayAlerts, Sandbox, sandbox_client, warm_up
from _costs import cpu_seconds
from _stack import WARMUP_TAG, Stack, load_subscribers, log, parse_args, report, stack
from common.messages import Audience
from raw_limit import measure_raw, size_name

# the ratio the issues name is at 1M: it is taken in three rounds, raw loop and broadcaster
# alternating (raw, broadcast, raw, broadcast, raw, broadcast, raw), and the round with the
# median ratio gives the size's figures
ROUNDS = {1_000_000: 3}


async def raw_round(bench: Stack, sandbox: Sandbox) -> tuple[float, float]:
    """One raw loop: its seconds and the CPU seconds this process spent on it; the sandbox
    reset after it."""
    spent = time.process_time()
    seconds = await measure_raw(bench, sandbox)
    cpu = time.process_time() - spent
    await sandbox.reset()
    return seconds, cpu


async def main() -> None:
    # --quick keeps the sizes issue 7 names; the full run adds a national audience
    args = parse_args("Fan-out throughput end to end, beside the raw limit.")
    sizes = [100_000, 450_000, 1_000_000]
    if not args.quick:
        sizes.append(10_000_000)
    figures: dict[str, float | int | str] = {"fanout_sizes": ",".join(map(str, sizes))}
    duplicates = 0
    async with stack("fanout") as bench:
        await load_subscribers(bench, 10, (WARMUP_TAG,))
        bench.start_sandbox()
        broadcaster = bench.start_broadcaster("all")
        bench.start_gateway()
        api_key = await bench.operator_key()
        async with sandbox_client(bench) as sandbox, httpx.AsyncClient(timeout=60) as client:
            posting = GatewayAlerts(client, bench.gateway_url, api_key)
            await warm_up(bench, posting, sandbox, (broadcaster,))
            for size in sizes:
                await load_subscribers(bench, size - bench.subscribers)
                await sandbox.reset()
                raw, raw_cpu = await raw_round(bench, sandbox)
                raws, raw_cpus = [raw], [raw_cpu]
                fanouts: list[float] = []
                fanout_cpus: list[float] = []
                for _ in range(ROUNDS.get(size, 1)):
                    spent = cpu_seconds(broadcaster.pid)
                    alert_id, posted = await posting.post(Audience(all=True))
                    ledger = await sandbox.wait_for(alert_id, size, 1800.0, (broadcaster,))
                    fanout_cpus.append(cpu_seconds(broadcaster.pid) - spent)
                    fanouts.append(float(ledger["last_accepted_at"]) - posted)
                    duplicates += int(ledger["duplicates"])
                    await sandbox.reset()
                    raw, raw_cpu = await raw_round(bench, sandbox)
                    raws.append(raw)
                    raw_cpus.append(raw_cpu)
                # each broadcast against the mean of the raw loops on its two sides
                sides = [(raws[i] + raws[i + 1]) / 2 for i in range(len(fanouts))]
                ratios = [raw / fanout for raw, fanout in zip(sides, fanouts, strict=True)]
                middle = ratios.index(statistics.median_low(ratios))
                fanout, raw = fanouts[middle], sides[middle]
                name = size_name(size)
                figures[f"fanout_seconds_{name}"] = round(fanout, 3)
                figures[f"raw_limit_seconds_{name}"] = round(raw, 3)
                figures[f"fanout_recipients_per_s_{name}"] = round(size / fanout)
                figures[f"fanout_ratio_vs_raw_{name}"] = round(raw / fanout, 3)
                fanout_cpu = fanout_cpus[middle]
                raw_cpu = (raw_cpus[middle] + raw_cpus[middle + 1]) / 2
                figures[f"fanout_cpu_s_{name}"] = round(fanout_cpu, 2)
                figures[f"raw_cpu_s_{name}"] = round(raw_cpu, 2)
                figures[f"fanout_cpu_ratio_vs_raw_{name}"] = round(raw_cpu / fanout_cpu, 3)
                log(
                    "%d recipients: broadcaster %s s (CPU %s s), raw loop %s s (CPU %s s)"
                    " (ratios %s; median %.2f)",
                    size,
                    ", ".join(f"{f:.2f}" for f in fanouts),
                    ", ".join(f"{c:.2f}" for c in fanout_cpus),
                    ", ".join(f"{r:.2f}" for r in raws),
                    ", ".join(f"{c:.2f}" for c in raw_cpus),
                    ", ".join(f"{r:.2f}" for r in ratios),
                    raw / fanout,
                )
    # the ratio issue 7 names is at 1M, whatever larger size the run adds
    figures["fanout_ratio_vs_raw"] = figures["fanout_ratio_vs_raw_1m"]
    figures["fanout_duplicates"] = duplicates
    report(figures)


if __name__ == "__main__":
    # the broadcaster runs on uvloop: so does the loop it is compared with
    uvloop.run(main())
