"""Tap throughput at the gateway against its own `/healthz`, and bulk subscriber import.

    .venv/bin/python bench/taps.py [--quick] [--connections N] [--seconds S]

1. Import: writes a CSV of 450,000 subscribers (100,000 with --quick) and runs
   `allim import` against `allim gateway`; `import_rows_per_s` is rows over the command's
   wall time (upload, COPY and upsert), `import_gateway_peak_rss_mib` the gateway's
   largest resident set, which stays flat because the body is streamed.
2. Taps: Debian's `wrk` (bench/wrk.sh installs it when missing) drives one gateway worker
   with bench/taps.lua: first `/healthz`, the cheapest route, as the ceiling of the
   gateway's HTTP stack on this machine, then `/r/{token}` spread over 20,000 tracked links
   and 5,000 readers (three taps in four carry a reader's cookie, the fourth is a new
   reader). Figures: `healthz_per_s`, `taps_per_s`, `tap_p50_ms`, `tap_p99_ms` (wrk's),
   `taps_vs_healthz`, and `tap_gateway_cpu_ms`: the CPU time (from /proc) the gateway spent
   per answered tap, less what it burns idle. Afterwards the `engagement` topic is read
   back: `taps_recorded` events arrived for the `taps_ok` redirects (`taps_lost` is how
   many of those never came; wrk does not count the requests it leaves unanswered when it
   stops, so a few more may be recorded than answered).

On a machine with two cores or more, wrk is pinned to one core and the gateway (every
thread of it) to another, so that neither takes the other's CPU; Kafka and PostgreSQL are
not pinned. `pinned` in the figures says whether it was done.

With `ALLIM_BENCH_TAPS_BASELINE=<git revision>`, the same measurement runs first against a
gateway started from that revision's `src` (the figures prefixed `baseline_`), then
against the working tree's, on the same data stack and database: before and after side
by side, with `taps_vs_baseline` and `tap_cpu_vs_baseline`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import subprocess
import tarfile
import time
import uuid
from io import BytesIO
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from _stack import ROOT, Stack, end_offsets, log, report, stack, vm_kib
from cli.processes import Service, allim_executable
from common.readback import read_back
from common.tokens import TokenSigner
from common.topics import ENGAGEMENT

FULL_ROWS = 450_000
QUICK_ROWS = 100_000
TOKENS = 20_000
READERS = 5_000
IDLE_SECONDS = 3.0
WARM_UP_SECONDS = 2.0
LUA = Path(__file__).resolve().parent / "taps.lua"
WRK_SH = Path(__file__).resolve().parent / "wrk.sh"
BASELINE_ENV = "ALLIM_BENCH_TAPS_BASELINE"


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Tap throughput and bulk import at the gateway.")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (under 2 minutes)")
    parser.add_argument(
        "--connections", type=int, default=64, help="wrk's open connections (default 64)"
    )
    parser.add_argument("--seconds", type=float, help="time per measurement (default 10, quick 5)")
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


def cores() -> tuple[int, int] | None:
    """(wrk's core, the gateway's core) when this process may use two cores, else None."""
    allowed = sorted(os.sched_getaffinity(0))
    return (allowed[0], allowed[1]) if len(allowed) >= 2 else None


def pin_tree(pid: int, core: int) -> None:
    """Pin every thread of the process tree of `pid` to `core`."""
    for member in process_tree(pid):
        for task in Path(f"/proc/{member}/task").glob("*"):
            try:
                os.sched_setaffinity(int(task.name), {core})
            except (ProcessLookupError, FileNotFoundError):
                continue  # a thread that ended meanwhile


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


def wrk_executable() -> str:
    """wrk's path; bench/wrk.sh installs Debian's package when it is missing."""
    done = subprocess.run([str(WRK_SH)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk is missing and could not be installed: {done.stderr[-2000:]}")
    return done.stdout.strip()


def run_wrk(
    wrk: str, url: str, core: int | None, connections: int, seconds: float, *mode: str
) -> dict[str, Any]:
    """One wrk run of bench/taps.lua in `mode`, on `core` when given; its figures."""
    command = [
        wrk,
        "--threads",
        "1",
        "--connections",
        str(connections),
        "--duration",
        f"{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "--script",
        str(LUA),
        url,
        "--",
        *mode,
    ]
    if core is not None:
        command = ["taskset", "--cpu-list", str(core), *command]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk exited {done.returncode}: {done.stdout[-1000:]} {done.stderr}")
    figures: dict[str, Any] = json.loads(lines[-1])
    return figures


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


async def measure(
    bench: Stack,
    gateway: Service,
    wrk: str,
    alert_id: uuid.UUID,
    seconds: float,
    connections: int,
) -> dict[str, Any]:
    """`/healthz`, then taps on `alert_id`'s links (in bench.workdir/tokens), against one
    running gateway."""
    pinned = cores()
    wrk_core = None
    if pinned is not None:
        wrk_core, gateway_core = pinned
        pin_tree(gateway.pid, gateway_core)
    url = bench.gateway_url
    tokens, readers, warm_up = (
        str(bench.workdir / name) for name in ("tokens", "readers", "warm-up")
    )
    # the producer connected, the code paths warm; then what the idle gateway burns (outbox
    # polling, Kafka metadata), which is not the requests' cost
    await asyncio.to_thread(
        run_wrk, wrk, url, wrk_core, connections, WARM_UP_SECONDS, "taps", warm_up, readers, "2"
    )
    idle_before = tree_cpu_seconds(gateway.pid)
    await asyncio.sleep(IDLE_SECONDS)
    idle_rate = (tree_cpu_seconds(gateway.pid) - idle_before) / IDLE_SECONDS

    async def timed(*mode: str) -> tuple[dict[str, Any], float]:
        cpu_before = tree_cpu_seconds(gateway.pid)
        started = time.perf_counter()
        answer = await asyncio.to_thread(run_wrk, wrk, url, wrk_core, connections, seconds, *mode)
        elapsed = time.perf_counter() - started
        cpu = tree_cpu_seconds(gateway.pid) - cpu_before - idle_rate * elapsed
        return answer, cpu

    log("GET /healthz for %.0f s, %d connections", seconds, connections)
    healthz, healthz_cpu = await timed("healthz")
    since = await end_offsets(bench.kafka, ENGAGEMENT)
    log("GET /r/{token} for %.0f s, %d connections", seconds, connections)
    taps, taps_cpu = await timed("taps", tokens, readers, "1")
    failed = sum(taps["errors"].values())
    ok = taps["requests"] - taps["errors"]["status"]
    recorded = await count_taps(bench.kafka, alert_id, ok, since)
    healthz_per_s = healthz["requests"] / healthz["seconds"]
    taps_per_s = ok / taps["seconds"]
    return {
        "healthz_per_s": round(healthz_per_s),
        "healthz_p99_ms": round(healthz["p99_ms"], 2),
        "healthz_gateway_cpu_ms": round(healthz_cpu / max(healthz["requests"], 1) * 1000, 3),
        "taps_per_s": round(taps_per_s),
        "tap_p50_ms": round(taps["p50_ms"], 2),
        "tap_p99_ms": round(taps["p99_ms"], 2),
        "taps_vs_healthz": round(taps_per_s / healthz_per_s, 3),
        "taps_ok": ok,
        "taps_failed": failed,
        "taps_recorded": recorded,
        "taps_lost": max(0, ok - recorded),
        # CPU the gateway spent per answered tap: what one core can take, load aside
        "tap_gateway_cpu_ms": round(taps_cpu / max(ok, 1) * 1000, 3),
    }


def baseline_source(revision: str, into: Path) -> Path:
    """The `src` folder of `revision`, extracted under `into`."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "src"], cwd=ROOT, capture_output=True
    )
    if archive.returncode != 0:
        raise SystemExit(f"{BASELINE_ENV}={revision}: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def write_lines(path: Path, values: list[str]) -> None:
    path.write_text("".join(f"{value}\n" for value in values))


async def main() -> None:
    args = parse()
    rows = QUICK_ROWS if args.quick else FULL_ROWS
    seconds = args.seconds or (5.0 if args.quick else 10.0)
    baseline = os.environ.get(BASELINE_ENV, "").strip()
    wrk = wrk_executable()
    figures: dict[str, Any] = {
        "connections": args.connections,
        "pinned": cores() is not None,
        "load_generator": "wrk",
    }
    async with stack("taps") as bench:
        gateway = bench.start_gateway(log_level="WARNING")
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

        signer = TokenSigner(bench.tracking_secret.encode())
        expires = int(time.time()) + 3600
        write_lines(bench.workdir / "readers", [secrets.token_hex(16) for _ in range(READERS)])
        write_lines(
            bench.workdir / "warm-up", [signer.sign(uuid.uuid4(), n, expires) for n in range(100)]
        )

        def links(alert_id: uuid.UUID) -> None:
            subscribers = random.sample(range(rows), TOKENS)
            tokens = [signer.sign(alert_id, n, expires) for n in subscribers]
            write_lines(bench.workdir / "tokens", tokens)

        if baseline:
            await asyncio.to_thread(gateway.stop)
            source = baseline_source(baseline, bench.workdir / "baseline")
            log("baseline: a gateway from %s", baseline)
            old = bench.start_gateway(log_level="WARNING", source=source)
            alert_id = uuid.uuid4()
            links(alert_id)
            before = await measure(bench, old, wrk, alert_id, seconds, args.connections)
            await asyncio.to_thread(old.stop)
            figures |= {f"baseline_{name}": value for name, value in before.items()}
            figures["baseline"] = baseline
            gateway = bench.start_gateway(log_level="WARNING")
        alert_id = uuid.uuid4()
        links(alert_id)
        figures |= await measure(bench, gateway, wrk, alert_id, seconds, args.connections)
        if baseline:
            figures["taps_vs_baseline"] = round(
                figures["taps_per_s"] / max(figures["baseline_taps_per_s"], 1), 3
            )
            figures["tap_cpu_vs_baseline"] = round(
                figures["tap_gateway_cpu_ms"] / max(figures["baseline_tap_gateway_cpu_ms"], 1e-9),
                3,
            )
    report(figures)


if __name__ == "__main__":
    asyncio.run(main())
