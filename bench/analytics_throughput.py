"""How fast `allim analytics` aggregates, and how far behind it falls under a burst of taps.

    .venv/bin/python bench/analytics_throughput.py [--quick] [--taps N]

1. Throughput: with the consumer stopped, N taps of one alert (450,000; 100,000 with --quick)
   are published as a backlog; then `allim analytics` starts and the rollup is polled every
   50 ms. `analytics_events_per_s` is the taps applied between the first and the last change
   of the rollup over that time (the group join is left out).
2. Burst: with the consumer running and idle, another N taps of a second alert are published
   as fast as the producer goes. `analytics_burst_lag_s` is the time from the broker's
   acknowledgement of the last tap to the rollup showing all N; `burst_publish_per_s` is the
   producer's rate, which bounds how fast a burst can arrive.

Taps mimic a broadcast: each goes to a random one of N subscribers' links; 70% are the
subscriber's own reader, 30% a friend it was forwarded to. The expected readers, links opened
and forwarded readers are computed independently while publishing; `analytics_exact` says
whether the rollups match them exactly. The publisher shares the two cores with the consumer,
PostgreSQL and Kafka, so the figures are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from _stack import Stack, log, report, skip_history, stack
from cli.processes import Service, free_port
from common import events
from common.events import CloudEvent
from common.kafka import create_producer
from common.topics import ALERT_EVENTS, DELIVERIES, ENGAGEMENT

FULL_TAPS = 450_000
QUICK_TAPS = 100_000
GROUP = "allim-analytics-bench"


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Analytics consumer throughput and burst lag.")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (under 2 minutes)")
    parser.add_argument("--taps", type=int, help="taps per phase (default 450,000; quick 100,000)")
    return parser.parse_args()


class Expectation:
    """The readers, links opened and forwards a stream of taps must produce (the oracle)."""

    def __init__(self) -> None:
        self.first_reader: dict[int, str] = {}
        self.readers: dict[str, bool] = {}
        self.taps = 0

    def add(self, subscriber: int, reader: str) -> None:
        self.taps += 1
        first = self.first_reader.setdefault(subscriber, reader)
        self.readers.setdefault(reader, first != reader)

    def figures(self) -> dict[str, int]:
        return {
            "taps": self.taps,
            "readers": len(self.readers),
            "first_readers": len(self.first_reader),
            "forwarded_readers": sum(self.readers.values()),
        }


async def publish_alert(
    producer: AIOKafkaProducer, alert: uuid.UUID, taps: int, seed: int
) -> tuple[Expectation, float]:
    """A started alert, its deliveries, then `taps` taps; the oracle and the last ack time."""
    rng = random.Random(seed)
    key = str(alert).encode()
    expectation = Expectation()
    started = {
        "alert_id": str(alert),
        "status": "sending",
        "category": "emergency",
        "targeted": taps,
        "delivered": 0,
        "failed": 0,
        "pending": taps,
    }
    await _send(producer, ALERT_EVENTS, key, CloudEvent(events.ALERT_STARTED, "/bench", started))
    for seq, first in enumerate(range(1, taps + 1, 1000)):
        size = min(1000, taps + 1 - first)
        batch_id = f"{alert}:0:{seq}"
        batch = {
            "alert_id": str(alert),
            "batch_id": batch_id,
            "shard_no": 0,
            "seq": seq,
            "category": "emergency",
            "delivered": size,
            "failed": 0,
            "failed_by_reason": {},
            # each recipient's outcome, as the broadcaster sends them
            "subscriber_ids": list(range(first, first + size)),
            "result_codes": [1000] * size,
        }
        event = CloudEvent(events.DELIVERY_BATCH, "/bench", batch, id=batch_id)
        await _send(producer, DELIVERIES, key, event)
    now = datetime.now(UTC).isoformat()
    pending = []
    for _ in range(taps):
        subscriber = rng.randrange(1, taps + 1)
        reader = f"u{subscriber}" if rng.random() < 0.7 else f"f{rng.randrange(taps)}"
        expectation.add(subscriber, reader)
        data = {
            "alert_id": str(alert),
            "subscriber_id": subscriber,
            "reader_id": reader,
            "tapped_at": now,
        }
        event = CloudEvent(events.LINK_TAPPED, "/bench", data)
        pending.append(
            await producer.send(
                ENGAGEMENT, value=orjson.dumps(data), key=key, headers=event.headers()
            )
        )
        if len(pending) >= 20_000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    return expectation, time.time()


async def _send(producer: AIOKafkaProducer, topic: str, key: bytes, event: CloudEvent) -> None:
    await producer.send(topic, value=event.value(), key=key, headers=event.headers())


async def rollup(connection: asyncpg.Connection, alert: uuid.UUID) -> dict[str, Any]:
    row = await connection.fetchrow(
        "SELECT taps, readers, first_readers, forwarded_readers, delivered"
        " FROM alert_stats WHERE alert_id = $1",
        alert,
    )
    return dict(row) if row else {"taps": 0}


async def wait_for_taps(
    connection: asyncpg.Connection, alert: uuid.UUID, taps: int, within: float = 900
) -> tuple[float, int, float]:
    """(time of the first change seen, taps then, time all `taps` were applied)."""
    first_seen: tuple[float, int] | None = None
    deadline = time.time() + within
    while time.time() < deadline:
        current = (await rollup(connection, alert))["taps"]
        now = time.time()
        if current and first_seen is None:
            first_seen = (now, current)
        if current >= taps:
            assert first_seen is not None
            return first_seen[0], first_seen[1], now
        await asyncio.sleep(0.05)
    raise SystemExit(f"The rollup of {alert} did not reach {taps} taps in {within} s.")


def analytics_service(bench: Stack, index: int) -> Service:
    port = free_port()
    env = bench.common_env() | {
        "ALLIM_ANALYTICS_GROUP_ID": GROUP,
        "ALLIM_ANALYTICS_METRICS_PORT": str(port),
        "ALLIM_LOG_LEVEL": "WARNING",
    }
    return Service(
        f"analytics-{index}",
        ["analytics"],
        env,
        f"http://127.0.0.1:{port}/metrics",
        bench.workdir / f"analytics-{index}.log",
    )


async def main() -> None:
    args = parse()
    taps = args.taps or (QUICK_TAPS if args.quick else FULL_TAPS)
    figures: dict[str, Any] = {"analytics_taps_per_phase": taps}
    async with stack("analytics") as bench:
        await skip_history(bench.kafka, {GROUP: (DELIVERIES, ENGAGEMENT, ALERT_EVENTS)})
        producer = create_producer(bench.kafka, "allim-bench-analytics", linger_ms=20)
        await producer.start()
        connection = await asyncpg.connect(bench.dsn)
        try:
            backlog_alert, burst_alert = uuid.uuid4(), uuid.uuid4()
            log("publishing a backlog of %d taps", taps)
            backlog, _ = await publish_alert(producer, backlog_alert, taps, seed=1)
            service = bench.group.start(analytics_service(bench, 0))
            log("consumer started (pid %d); waiting for the rollup", service.pid)
            first, count, done = await wait_for_taps(connection, backlog_alert, taps)
            figures["analytics_events_per_s"] = round((taps - count) / max(done - first, 1e-3))
            log("backlog applied: %d events/s", figures["analytics_events_per_s"])

            log("publishing a burst of %d taps to the running consumer", taps)
            started = time.time()
            burst, last_acked = await publish_alert(producer, burst_alert, taps, seed=2)
            figures["burst_publish_per_s"] = round(taps / (last_acked - started))
            _, _, done = await wait_for_taps(connection, burst_alert, taps)
            figures["analytics_burst_lag_s"] = round(max(0.0, done - last_acked), 2)
            log("burst lag %.2f s", figures["analytics_burst_lag_s"])

            exact = True
            for alert, expected in ((backlog_alert, backlog), (burst_alert, burst)):
                got = await rollup(connection, alert)
                wanted = expected.figures()
                exact &= all(got[k] == v for k, v in wanted.items()) and got["delivered"] == taps
                figures.setdefault("analytics_read_rate", round(got["readers"] / taps, 3))
            figures["analytics_exact"] = exact
        finally:
            await connection.close()
            await producer.stop()
    report(figures)


if __name__ == "__main__":
    asyncio.run(main())
