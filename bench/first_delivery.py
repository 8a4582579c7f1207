"""Time to first delivery: from POSTing an alert to its first batch accepted at the sandbox.

Small alerts (a tagged audience of 200) are POSTed one after another to `allim gateway`, with
a running broadcaster (one planner-and-sender process, no rate limit) over a database of
100,000 subscribers. The clock starts when the POST is sent and stops at the sandbox's
timestamp of the first accepted batch: the gateway's outbox and relay, Kafka, the planner and
a sender are all inside. `public` alerts take the normal shard topic, `emergency` ones the
urgent topic.

    .venv/bin/python bench/first_delivery.py [--quick]   # 10 alerts of each category quick, 20 else

Figures: first_delivery_p50_ms and first_delivery_p99_ms (public), the same for emergency
(first_delivery_emergency_p50_ms, ..._p99_ms), and first_delivery_alerts.
"""

from __future__ import annotations

import asyncio

import httpx

from _clients import GatewayAlerts, sandbox_client, warm_up
from _stack import (
    SMALL_TAG,
    WARMUP_TAG,
    load_subscribers,
    log,
    parse_args,
    percentile,
    report,
    stack,
)
from common.messages import Audience, Category

DATABASE_SIZE = 100_000
SMALL_AUDIENCE = 200


async def main() -> None:
    args = parse_args("Time from POSTing an alert to its first delivery.")
    count = 10 if args.quick else 20
    latencies: dict[Category, list[float]] = {"public": [], "emergency": []}
    async with stack("first") as bench:
        await load_subscribers(bench, 10, (WARMUP_TAG,))
        await load_subscribers(bench, DATABASE_SIZE // 2)
        await load_subscribers(bench, SMALL_AUDIENCE, (SMALL_TAG,))
        await load_subscribers(bench, DATABASE_SIZE - bench.subscribers)
        bench.start_sandbox()
        broadcaster = bench.start_broadcaster("all")
        bench.start_gateway()
        api_key = await bench.operator_key()
        async with sandbox_client(bench) as sandbox, httpx.AsyncClient(timeout=60) as client:
            posting = GatewayAlerts(client, bench.gateway_url, api_key)
            await warm_up(bench, posting, sandbox, (broadcaster,))
            for index in range(count * 2):
                category: Category = "emergency" if index % 2 else "public"
                alert_id, posted = await posting.post(Audience(tags=[SMALL_TAG]), category=category)
                ledger = await sandbox.wait_for(
                    alert_id, SMALL_AUDIENCE, 60.0, (broadcaster,), poll=0.05
                )
                latencies[category].append((float(ledger["first_accepted_at"]) - posted) * 1000)
    figures: dict[str, float | int] = {"first_delivery_alerts": count * 2}
    for category, values in latencies.items():
        prefix = "first_delivery" if category == "public" else f"first_delivery_{category}"
        figures[f"{prefix}_p50_ms"] = round(percentile(values, 0.5), 1)
        figures[f"{prefix}_p99_ms"] = round(percentile(values, 0.99), 1)
        log("%s: %s ms", category, ", ".join(f"{v:.0f}" for v in sorted(values)))
    report(figures)


if __name__ == "__main__":
    asyncio.run(main())
