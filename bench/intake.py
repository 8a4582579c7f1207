"""Alert intake at the gateway: how many alerts a second `POST /v1/alerts` accepts.

    .venv/bin/python bench/intake.py [--quick] [--alerts N] [--clients N] [--workers N]

`allim gateway` runs as a child process on a fresh database. Concurrent httpx clients post
N JSON alerts (10,000; 2,000 with --quick), each with its own Idempotency-Key, as fast as the
gateway answers; then N/4 CAP 1.2 alerts. Each accepted alert is one transaction holding
the alert row and its outbox row.

- `intake_alerts_per_s`, `intake_p50_ms`, `intake_p99_ms`: JSON alerts accepted over the
  phase's wall time, and the latency each client saw.
- `cap_alerts_per_s`, `cap_p50_ms`, `cap_p99_ms`: the same for CAP XML.
- `outbox_lag_p50_ms`, `outbox_lag_p99_ms`: from the 202 to the relay handing the record to
  Kafka (the record's CreateTime), read back from `alerts.requested`;
  `published_exactly_once` says every accepted alert is there exactly once.

The load generator shares the machine's two cores with the gateway, PostgreSQL and Kafka,
so the figures are a floor of what the gateway does on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections import Counter
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import TopicPartition

from _stack import Stack, end_offsets, log, percentile, report, stack
from common.readback import read_back
from common.topics import ALERTS_REQUESTED

FULL_ALERTS = 10_000
QUICK_ALERTS = 2_000

CAP_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>BENCH-{n}</identifier>
  <sender>bench@allim.dev</sender>
  <sent>2026-11-25T19:00:00+09:00</sent>
  <status>Actual</status>
  <msgType>Alert</msgType>
  <scope>Public</scope>
  <info>
    <language>ko-KR</language>
    <category>Met</category>
    <event>호우</event>
    <urgency>Expected</urgency>
    <severity>Moderate</severity>
    <certainty>Likely</certainty>
    <headline>호우주의보 (벤치마크)</headline>
    <description>allim benchmark alert: please ignore.</description>
    <area><areaDesc>팔달구</areaDesc></area>
  </info>
</alert>"""


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Alert intake rate and latency at the gateway.")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (under 2 minutes)")
    parser.add_argument("--alerts", type=int, help="JSON alerts to post (default 10,000)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent posting clients")
    parser.add_argument("--workers", type=int, default=1, help="gateway worker processes")
    return parser.parse_args()


def json_alert(n: int) -> tuple[bytes, str]:
    body = {
        "title": f"벤치마크 안내 {n}",
        "body": "allim benchmark alert: please ignore.",
        "category": "public",
        "buttons": [{"name": "안내", "link": "https://example.org"}],
        "audience": {"districts": ["장안구"], "tags": []},
    }
    return orjson.dumps(body), "application/json"


def cap_alert(n: int) -> tuple[bytes, str]:
    return CAP_TEMPLATE.format(n=n).encode(), "application/cap+xml"


async def post_all(
    url: str, key: str, count: int, clients: int, make: Any
) -> tuple[float, list[float], dict[str, float], int]:
    """Post `count` alerts from `clients` workers.

    Returns the wall time, each latency (s), the unix time each alert was accepted, errors.
    """
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)
    latencies: list[float] = []
    accepted: dict[str, float] = {}
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def worker(http: httpx.AsyncClient) -> None:
        nonlocal errors
        while True:
            try:
                n = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            content, content_type = make(n)
            headers = {"Content-Type": content_type, "Idempotency-Key": str(uuid.uuid4())}
            started = time.perf_counter()
            try:
                response = await http.post("/v1/alerts", content=content, headers=headers)
            except httpx.HTTPError as exc:
                errors += 1
                log("alert %d: %r", n, exc)
                continue
            latencies.append(time.perf_counter() - started)
            if response.status_code == 202:
                accepted[response.json()["id"]] = time.time()
            else:
                errors += 1
                log("alert %d: HTTP %d %s", n, response.status_code, response.text[:300])

    async with httpx.AsyncClient(
        base_url=url, headers={"X-API-Key": key}, limits=limits, timeout=30.0
    ) as http:
        started = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(clients)))
        wall = time.perf_counter() - started
    return wall, latencies, accepted, errors


async def published_times(
    kafka: str, start: dict[TopicPartition, int], ids: set[str], within: float
) -> dict[str, list[float]]:
    """CreateTime (unix s) of each `alerts.requested` record keyed by one of `ids`."""
    # a second of lingering, so that a duplicate published late would show
    records = await read_back(kafka, ALERTS_REQUESTED, ids, since=start, within=within, linger=1.0)
    seen: dict[str, list[float]] = {}
    for record in records:
        if record.key is not None:
            seen.setdefault(record.key.decode(), []).append(record.timestamp / 1000)
    return seen


def ms(value: float) -> float:
    return round(value * 1000, 2)


async def seed_audience(bench: Stack) -> None:
    """A subscriber in each district the alerts address: the gateway refuses an audience
    that reaches nobody."""
    connection = await asyncpg.connect(bench.dsn)
    try:
        await connection.executemany(
            "INSERT INTO subscribers (recipient_no, district) VALUES ($1, $2)",
            [("01099900001", "장안구"), ("01099900002", "팔달구")],
        )
    finally:
        await connection.close()


async def main() -> None:
    args = parse()
    count = args.alerts or (QUICK_ALERTS if args.quick else FULL_ALERTS)
    figures: dict[str, Any] = {"workers": args.workers, "clients": args.clients}
    async with stack("intake") as bench:
        bench.start_gateway(gateway_workers=args.workers, log_level="WARNING")
        url = bench.gateway_url
        key = await bench.operator_key()
        await seed_audience(bench)
        start = await end_offsets(bench.kafka, ALERTS_REQUESTED)

        await post_all(url, key, 100, args.clients, json_alert)  # warm-up
        log("posting %d JSON alerts from %d clients", count, args.clients)
        wall, latencies, accepted, errors = await post_all(
            url, key, count, args.clients, json_alert
        )
        figures |= {
            "intake_alerts": count,
            "intake_alerts_per_s": round(len(accepted) / wall, 1),
            "intake_p50_ms": ms(percentile(latencies, 0.50)),
            "intake_p99_ms": ms(percentile(latencies, 0.99)),
            "intake_errors": errors,
        }
        log("JSON: %s", figures)

        caps = max(count // 4, 1)
        log("posting %d CAP alerts", caps)
        cap_wall, cap_latencies, cap_accepted, cap_errors = await post_all(
            url, key, caps, args.clients, cap_alert
        )
        figures |= {
            "cap_alerts_per_s": round(len(cap_accepted) / cap_wall, 1),
            "cap_p50_ms": ms(percentile(cap_latencies, 0.50)),
            "cap_p99_ms": ms(percentile(cap_latencies, 0.99)),
            "cap_errors": cap_errors,
        }

        log("reading %d records back from %s", len(accepted), ALERTS_REQUESTED)
        published = await published_times(bench.kafka, start, set(accepted), within=60.0)
        lags = [max(published[i][0] - accepted[i], 0.0) for i in accepted if i in published]
        counts = Counter(len(times) for times in published.values())
        figures |= {
            "outbox_lag_p50_ms": ms(percentile(lags, 0.50)) if lags else None,
            "outbox_lag_p99_ms": ms(percentile(lags, 0.99)) if lags else None,
            "published": len(published),
            "published_exactly_once": len(published) == len(accepted) and set(counts) == {1},
        }
    report(figures)


if __name__ == "__main__":
    asyncio.run(main())
