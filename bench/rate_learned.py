"""Learned rate: with no rate configured, how close the senders get to a dealer limit they
were never told, and how often the dealer refuses them while they find it.

The sandbox allows 5,000 messages/s and says nothing of it but 429s; the broadcaster runs with
no `ALLIM_BROADCASTER_RATE_*` set, as a new operator leaves it, as one planner and three
sender processes (then, on a fresh bucket, one sender), which learn the rate together in the
shared bucket row (broadcaster.ratelimit). The row's rate is read four times a second for
the chart.

    .venv/bin/python bench/rate_learned.py [--quick]   # 450,000 recipients; 150,000 quick

Figures, after the first 10 s of the send: rate_learned_fidelity (mean accepted messages/s
over the limit) and rate_learned_429_share (429s over requests), with 3 senders; the same
with 1 sender (`..._1_sender`); rate_learned_429s (429s of the whole 3-sender send) and
series_learned_rate for the chart.
"""

from __future__ import annotations

import asyncio

from _clients import alerts, sandbox_client, warm_up
from _rates import Send, measured_send
from _stack import WARMUP_TAG, Stack, load_subscribers, log, parse_args, report, stack

LIMIT = 5_000
SETTLE_S = 10  # the figures leave out the first seconds, while the rate is being found


async def learn(bench: Stack, senders: int, audience: int) -> Send:
    """One send with `senders` sender processes and a bucket of their own (learned from 0)."""
    bucket = f"learn-{senders}"
    started = tuple(
        bench.start_broadcaster(
            "sender", index, broadcaster_rate_bucket=bucket, broadcaster_rate_learn=True
        )
        for index in range(senders)
    )
    planner = bench.start_broadcaster("planner", senders)
    services = (planner, *started)
    try:
        async with sandbox_client(bench) as sandbox, alerts(bench) as posting:
            await warm_up(bench, posting, sandbox, services)
            send = await measured_send(bench, sandbox, posting, services, audience, bucket)
    finally:
        for service in services:
            await asyncio.to_thread(service.stop)
    log(
        "%d sender(s): %.4f of the limit after %d s, 429 share %.4f",
        senders,
        send.fidelity(LIMIT, SETTLE_S),
        SETTLE_S,
        send.share_429(SETTLE_S),
    )
    return send


async def main() -> None:
    args = parse_args("Achieved send rate against a limit nobody configured.")
    audience = 150_000 if args.quick else 450_000
    async with stack("rate_learned") as bench:
        await load_subscribers(bench, 10, (WARMUP_TAG,))
        await load_subscribers(bench, audience - 10)
        bench.start_sandbox(messages_per_second=LIMIT)
        three = await learn(bench, 3, audience)
        one = await learn(bench, 1, audience)

    report(
        {
            "rate_learned_fidelity": round(three.fidelity(LIMIT, SETTLE_S), 4),
            "rate_learned_429_share": round(three.share_429(SETTLE_S), 5),
            "rate_learned_fidelity_1_sender": round(one.fidelity(LIMIT, SETTLE_S), 4),
            "rate_learned_429_share_1_sender": round(one.share_429(SETTLE_S), 5),
            "rate_learned_429s": sum(three.throttled.values()),
            "rate_learned_seconds": max(three.accepted) - three.start + 1,
            "rate_learned_limit_per_s": LIMIT,
            "series_learned_rate": three.series(LIMIT),
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
