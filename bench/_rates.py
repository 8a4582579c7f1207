"""What the rate benchmarks share: one send measured at the sandbox, second by second, with the
shared bucket's rate read from `rate_buckets` while it runs.

The sandbox counts accepted recipients and 429s per wall-clock second; a figure "after the
first N s" takes the whole seconds from N seconds after the first accepted batch to the one
before the last (the last is partial).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg

from _clients import Alerts, Sandbox
from _stack import Stack, log
from cli.processes import Service
from common.messages import Audience

BATCH = 1000  # recipients per request: the broadcaster's default batch size
POLL_SECONDS = 0.25


@dataclass
class Send:
    """One measured send: the sandbox's per-second series and the shared rate over time."""

    alert_id: uuid.UUID
    accepted: dict[int, int]  # unix second -> recipients accepted
    throttled: dict[int, int]  # unix second -> requests answered 429
    rates: list[tuple[float, float]]  # (unix time, the bucket row's messages/s)

    @property
    def start(self) -> int:
        """The second of the first accepted batch."""
        return min(self.accepted)

    def after(self, skip_s: int) -> list[int]:
        """The whole seconds from `skip_s` after the start to the one before the last."""
        return list(range(self.start + skip_s, max(self.accepted)))

    def fidelity(self, limit: float, skip_s: int) -> float:
        """Mean accepted messages/s after the first `skip_s` seconds, over `limit`."""
        seconds = self.after(skip_s)
        if not seconds:
            raise RuntimeError(f"Too short a send to measure after {skip_s} s: {self.accepted}")
        return sum(self.accepted.get(s, 0) for s in seconds) / len(seconds) / limit

    def refused_after(self, skip_s: int) -> int:
        """429s from `skip_s` seconds after the start to the end."""
        return sum(n for s, n in self.throttled.items() if s >= self.start + skip_s)

    def share_429(self, skip_s: int) -> float:
        """429s over requests, from `skip_s` seconds after the start to the end (requests:
        the 429s plus the accepted ones, of `BATCH` recipients each)."""
        refused = self.refused_after(skip_s)
        accepted = sum(n for s, n in self.accepted.items() if s >= self.start + skip_s)
        requests = refused + accepted / BATCH
        return refused / requests if requests else 0.0

    def series(self, limit: float) -> dict[str, Any]:
        """The chart's data: seconds since the start, accepted and 429s per second, the
        shared rate when it was read, and the limit."""
        seconds = range(self.start, max(self.accepted) + 1)
        return {
            "t_s": [s - self.start for s in seconds],
            "per_s": [self.accepted.get(s, 0) for s in seconds],
            "throttled_per_s": [self.throttled.get(s, 0) for s in seconds],
            "rate_t_s": [round(t - self.start, 2) for t, _ in self.rates],
            "rate_per_s": [round(rate, 1) for _, rate in self.rates],
            "limit_per_s": limit,
        }


@contextlib.asynccontextmanager
async def watching(dsn: str, bucket: str) -> AsyncIterator[list[tuple[float, float]]]:
    """Read the `<bucket>:messages` row's rate every `POLL_SECONDS` while the block runs."""
    rates: list[tuple[float, float]] = []
    connection = await asyncpg.connect(dsn)

    async def poll() -> None:
        while True:
            rate = await connection.fetchval(
                "SELECT rate FROM rate_buckets WHERE name = $1", f"{bucket}:messages"
            )
            if rate is not None:
                rates.append((time.time(), float(rate)))
            await asyncio.sleep(POLL_SECONDS)

    task = asyncio.create_task(poll())
    try:
        yield rates
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await connection.close()


async def measured_send(
    bench: Stack,
    sandbox: Sandbox,
    posting: Alerts,
    services: tuple[Service, ...],
    audience: int,
    bucket: str,
) -> Send:
    """Send one alert to everyone from clean sandbox counters; its per-second record."""
    await asyncio.sleep(1.5)  # let the sandbox's bucket fill again after the warm-up
    await sandbox.reset()
    async with watching(bench.dsn, bucket) as rates:
        alert_id, _ = await posting.post(Audience(all=True))
        await sandbox.wait_for(alert_id, audience, audience / 1000 + 120, services)
    stats = await sandbox.stats()
    send = Send(
        alert_id,
        {int(s): int(n) for s, n in stats["accepted_per_second"]},
        {int(s): int(n) for s, n in stats.get("throttled_per_second", [])},
        rates,
    )
    totals = stats["totals"]
    log(
        "%d accepted in %d s, %d of %d requests refused (429)",
        totals["recipients_accepted"],
        max(send.accepted) - send.start + 1,
        totals["throttled"],
        totals["requests"],
    )
    return send
