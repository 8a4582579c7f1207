"""Advertised rate: a dealer that sends the IETF RateLimit-Policy / RateLimit fields, and the
senders that follow them from its first answer.

The sandbox allows 5,000 messages/s and advertises it on every answer
(`ALLIM_SANDBOX_RATELIMIT_HEADERS`); the broadcaster runs with no rate configured, as one
planner and three sender processes.

    .venv/bin/python bench/rate_headers.py [--quick]   # 150,000 recipients; 50,000 quick

Figures, after the first second of the send: rate_headers_fidelity (mean accepted messages/s
over the limit) and rate_headers_429s_after_1s (429s, the goal is none); rate_headers_429s
over the whole send.
"""

from __future__ import annotations

import asyncio

from _clients import alerts, sandbox_client, warm_up
from _rates import measured_send
from _stack import WARMUP_TAG, load_subscribers, log, parse_args, report, stack

LIMIT = 5_000
SENDERS = 3
SETTLE_S = 1


async def main() -> None:
    args = parse_args("Achieved send rate against a limit the dealer advertises.")
    audience = 50_000 if args.quick else 150_000
    async with stack("rate_headers") as bench:
        await load_subscribers(bench, 10, (WARMUP_TAG,))
        await load_subscribers(bench, audience - 10)
        bench.start_sandbox(messages_per_second=LIMIT, ratelimit_headers=True)
        planner = bench.start_broadcaster("planner")
        # learning on, as an operator's default: the first answer's quota replaces the start
        senders = tuple(
            bench.start_broadcaster("sender", index, broadcaster_rate_learn=True)
            for index in range(SENDERS)
        )
        services = (planner, *senders)
        async with sandbox_client(bench) as sandbox, alerts(bench) as posting:
            await warm_up(bench, posting, sandbox, services)
            send = await measured_send(bench, sandbox, posting, services, audience, "provider")

    fidelity = send.fidelity(LIMIT, SETTLE_S)
    log("%.4f of the limit after %d s", fidelity, SETTLE_S)
    report(
        {
            "rate_headers_fidelity": round(fidelity, 4),
            "rate_headers_429s_after_1s": send.refused_after(SETTLE_S),
            "rate_headers_429s": sum(send.throttled.values()),
            "rate_headers_limit_per_s": LIMIT,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
