"""Rate fidelity: with the sandbox limited to R messages/s, how close the senders get to R, and
how often they overshoot it.

The sandbox refuses past R messages/s with 429. The broadcaster is told the same contract
number (`ALLIM_BROADCASTER_RATE_MESSAGES_PER_SECOND=R`) and runs as one planner and three
sender processes, so the figure also shows the global budget holding across processes: the
three together must stay under R without being told, and use all of it.

    .venv/bin/python bench/rate_fidelity.py [--quick]   # R = 10,000/s; 10 s quick, 30 s else

Figures: rate_fidelity (mean accepted messages/s over the steady seconds, divided by R),
rate_429_share (429 answers / send requests), rate_limit_per_s, rate_steady_seconds,
rate_min_second_fidelity, and series_send_rate for the chart.
"""

from __future__ import annotations

import asyncio

from _clients import alerts, sandbox_client, warm_up
from _stack import WARMUP_TAG, load_subscribers, log, parse_args, report, stack
from common.messages import Audience

RATE = 10_000
SENDERS = 3


async def main() -> None:
    args = parse_args("Achieved send rate against the provider's limit.")
    seconds = 10 if args.quick else 30
    audience = RATE * seconds
    async with stack("rate") as bench:
        await load_subscribers(bench, 10, (WARMUP_TAG,))
        await load_subscribers(bench, audience - 10)
        bench.start_sandbox(messages_per_second=RATE)
        planner = bench.start_broadcaster("planner")
        senders = tuple(
            bench.start_broadcaster("sender", index, broadcaster_rate_messages_per_second=RATE)
            for index in range(SENDERS)
        )
        services = (planner, *senders)
        async with sandbox_client(bench) as sandbox, alerts(bench) as posting:
            await warm_up(bench, posting, sandbox, services)
            await asyncio.sleep(1.5)  # let the sandbox's bucket fill again after the warm-up
            await sandbox.reset()
            alert_id, _ = await posting.post(Audience(all=True))
            ledger = await sandbox.wait_for(alert_id, audience, seconds * 4 + 60, services)
            stats = await sandbox.stats()

    series = sorted((int(s), int(n)) for s, n in stats["accepted_per_second"])
    # the first and last seconds are partial: the steady part is what lies between
    steady = [n for _, n in series[1:-1]]
    if not steady:
        raise RuntimeError(f"Too short a broadcast to measure: {series}")
    totals = stats["totals"]
    fidelity = sum(steady) / len(steady) / RATE
    share_429 = totals["throttled"] / totals["requests"] if totals["requests"] else 0.0
    log(
        "accepted %d in %d steady seconds: %.4f of R, 429s %d of %d requests",
        sum(steady),
        len(steady),
        fidelity,
        totals["throttled"],
        totals["requests"],
    )
    start = series[0][0]
    report(
        {
            "rate_fidelity": round(fidelity, 4),
            "rate_429_share": round(share_429, 5),
            "rate_limit_per_s": RATE,
            "rate_senders": SENDERS,
            "rate_steady_seconds": len(steady),
            "rate_min_second_fidelity": round(min(steady) / RATE, 4),
            "rate_duplicates": int(ledger["duplicates"]),
            "series_send_rate": {
                "t_s": [second - start for second, _ in series],
                "per_s": [n for _, n in series],
                "limit_per_s": RATE,
            },
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
