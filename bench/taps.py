"""Tap throughput at the gateway, and bulk subscriber import.

    .venv/bin/python bench/taps.py [--quick] [--workers N] [--clients N] [--seconds S]

1. Import: writes a CSV of 450,000 subscribers (100,000 with --quick) and runs
   `allim import` against `allim gateway`; `import_rows_per_s` is rows over the command's
   wall time (upload, COPY and upsert), `import_gateway_peak_rss_mib` the gateway's
   largest resident set, which stays flat because the body is streamed.
2. Taps: many concurrent httpx clients (each its own reader cookie) request `/r/{token}`
   for a fixed time without following the redirect; `taps_per_s`, `tap_p50_ms`,
   `tap_p99_ms` are measured by the clients; `tap_gateway_cpu_ms` is the CPU time the
   gateway's processes spent per answered tap, less what they burn idle (a figure that
   other load on the machine moves less than the rates). Afterwards the `engagement`
   topic is read back: `taps_recorded` events arrived for the `taps_ok` redirects.

The load generator shares the machine's cores with the gateway, so the figures are a
floor of what the gateway does on its own; on a 2-core machine one gateway worker does
better than two, because the clients need the other core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import subprocess
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from aiokafka import TopicPartition

from _stack import end_offsets, log, percentile, report, stack, vm_kib
from cli.processes import allim_executable
from common.readback import read_back
from common.tokens import TokenSigner
from common.topics import ENGAGEMENT

FULL_ROWS = 450_000
QUICK_ROWS = 100_000
TOKENS = 20_000
IDLE_SECONDS = 3.0


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Tap throughput and bulk import at the gateway.")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (under 2 minutes)")
    parser.add_argument(
        "--workers", type=int, default=1, help="gateway worker processes (default 1)"
    )
    parser.add_argument("--clients", type=int, default=64, help="concurrent tapping clients")
    parser.add_argument(
        "--procs", type=int, default=2, help="load-generator processes the clients share"
    )
    parser.add_argument("--seconds", type=float, help="tapping time (default 10, quick 5)")
    return parser.parse_args()


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (uvicorn's workers)."""
    found = [pid]
    for current in found:
        for task in Path(f"/proc/{current}/task").glob("*"):
            children = task / "children"
            if children.exists():
                found.extend(int(child) for child in children.read_text().split())
    return found


def tree_rss_mib(pid: int, field_name: str) -> float:
    """The largest `field_name` (VmRSS, VmHWM) among the process tree of `pid`, in MiB."""
    return max(vm_kib(p, field_name) for p in process_tree(pid)) / 1024


def tree_cpu_seconds(pid: int) -> float:
    """User and system CPU time used so far by the process tree of `pid`."""
    ticks = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def write_csv(path: Path, rows: int) -> None:
    """A subscriber file: numbers, a few districts, a tag or two."""
    districts = ["장안구", "권선구", "팔달구", "영통구"]
    with path.open("w", encoding="utf-8") as file:
        file.write("recipient_no,district,tags\n")
        for n in range(rows):
            file.write(f"010{n:08d},{districts[n % 4]},{'교통;날씨' if n % 3 else '교통'}\n")


def run_import(path: Path, url: str, key: str) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    done = subprocess.run(
        [allim_executable(), "import", str(path), "--gateway", url, "--api-key", key, "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"allim import exited {done.returncode}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result, seconds


async def hammer(
    url: str, tokens: list[str], clients: int, start_at: float, seconds: float
) -> tuple[list[float], dict[int, int]]:
    """From unix time `start_at`, tap for `seconds` with `clients` concurrent clients;
    the latencies (s) and a count of each status."""
    await asyncio.sleep(max(0.0, start_at - time.time()))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=10.0, limits=limits) as http:
            while time.perf_counter() < stop:
                token = random.choice(tokens)
                started = time.perf_counter()
                try:
                    response = await http.get(f"/r/{token}")
                    status = response.status_code
                except httpx.HTTPError:
                    status = 0
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, statuses


def hammer_process(
    url: str, tokens: list[str], clients: int, start_at: float, seconds: float
) -> tuple[list[float], dict[int, int]]:
    """`hammer` in a load-generator process of its own."""
    return asyncio.run(hammer(url, tokens, clients, start_at, seconds))


async def hammer_all(
    pool: ProcessPoolExecutor, procs: int, url: str, tokens: list[str], clients: int, seconds: float
) -> tuple[list[float], dict[int, int]]:
    """`clients` clients spread over `procs` processes, all starting together."""
    loop = asyncio.get_running_loop()
    start_at = time.time() + 0.5
    shares = [clients // procs + (1 if n < clients % procs else 0) for n in range(procs)]
    results = await asyncio.gather(
        *(
            loop.run_in_executor(pool, hammer_process, url, tokens, share, start_at, seconds)
            for share in shares
        )
    )
    latencies = [latency for part, _ in results for latency in part]
    statuses: dict[int, int] = {}
    for _, counts in results:
        for status, count in counts.items():
            statuses[status] = statuses.get(status, 0) + count
    return latencies, statuses


async def count_taps(
    bootstrap: str, alert_id: uuid.UUID, expected: int, since: dict[TopicPartition, int]
) -> int:
    """Tap events of `alert_id` on `engagement` after `since`: `expected` of them, or what
    came within 60 s."""
    records = await read_back(
        bootstrap,
        ENGAGEMENT,
        {str(alert_id)},
        since=since,
        enough=lambda found: len(found) >= expected,
        within=60.0,
        linger=0.0,
    )
    return len(records)


async def main() -> None:
    args = parse()
    rows = QUICK_ROWS if args.quick else FULL_ROWS
    seconds = args.seconds or (5.0 if args.quick else 10.0)
    figures: dict[str, Any] = {
        "workers": args.workers,
        "clients": args.clients,
        "client_procs": args.procs,
    }
    async with stack("taps") as bench:
        gateway = bench.start_gateway(gateway_workers=args.workers, log_level="WARNING")
        url = bench.gateway_url
        key = await bench.operator_key()

        path = bench.workdir / "subscribers.csv"
        write_csv(path, rows)
        log("importing %d rows (%.1f MiB)", rows, path.stat().st_size / 2**20)
        rss_before = tree_rss_mib(gateway.pid, "VmRSS")
        imported, took = await asyncio.to_thread(run_import, path, url, key)
        if imported["accepted"] != rows:
            raise RuntimeError(f"import accepted {imported['accepted']} of {rows}: {imported}")
        figures |= {
            "import_rows": rows,
            "import_seconds": round(took, 2),
            "import_rows_per_s": round(rows / took),
            "import_gateway_rss_before_mib": round(rss_before, 1),
            "import_gateway_peak_rss_mib": round(tree_rss_mib(gateway.pid, "VmHWM"), 1),
        }
        log("imported in %.1f s", took)

        alert_id = uuid.uuid4()
        signer = TokenSigner(bench.tracking_secret.encode())
        expires = int(time.time()) + 3600
        tokens = [signer.sign(alert_id, n, expires) for n in random.sample(range(rows), TOKENS)]
        warm_up = [signer.sign(uuid.uuid4(), n, expires) for n in range(100)]
        pool = ProcessPoolExecutor(args.procs, mp_context=multiprocessing.get_context("spawn"))
        with pool:
            # processes started, producer warm
            await hammer_all(pool, args.procs, url, warm_up, args.clients, 1.0)
            # what the idle gateway burns (outbox polling, Kafka metadata) is not the taps' cost
            idle_before = tree_cpu_seconds(gateway.pid)
            await asyncio.sleep(IDLE_SECONDS)
            idle_rate = (tree_cpu_seconds(gateway.pid) - idle_before) / IDLE_SECONDS
            since = await end_offsets(bench.kafka, ENGAGEMENT)
            log("tapping for %.0f s with %d clients", seconds, args.clients)
            cpu_before = tree_cpu_seconds(gateway.pid)
            started = time.perf_counter()
            latencies, statuses = await hammer_all(
                pool, args.procs, url, tokens, args.clients, seconds
            )
            elapsed = time.perf_counter() - started
            cpu_used = tree_cpu_seconds(gateway.pid) - cpu_before - idle_rate * elapsed
        ok = statuses.get(302, 0)
        recorded = await count_taps(bench.kafka, alert_id, ok, since)
        figures |= {
            "taps_per_s": round(ok / seconds),
            "tap_p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
            "tap_p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
            "taps_ok": ok,
            "taps_failed": sum(count for status, count in statuses.items() if status != 302),
            "taps_recorded": recorded,
            # CPU the gateway spent per answered tap: what one core can take, load aside
            "tap_gateway_cpu_ms": round(cpu_used / max(ok, 1) * 1000, 3),
        }
    report(figures)


if __name__ == "__main__":
    asyncio.run(main())
