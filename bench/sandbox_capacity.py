"""How many batches and recipients a second the sandbox provider accepts on this machine.

Starts `allim sandbox` (uvicorn, uvloop, httptools; simulator off, no limits) on a free
port and drives it with a lean keep-alive HTTP/1.1 client over a few connections, so the
client costs as little as it can. Every batch holds 1,000 recipients with tracked links.
Prints figures as JSON on the last line: `sandbox_recipients_per_s`,
`sandbox_batches_per_s`, and the sandbox's own CPU time per recipient. Then the recipient
simulator's tap rate (`sandbox_taps_per_s`): the `typical` profile at a time scale that
makes every tap due at once, against a minimal `/r/{token}` server in this process.

    .venv/bin/python bench/sandbox_capacity.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import sys
import time
import uuid
from pathlib import Path

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from sandbox.client import SandboxClient
from sandbox.server import serving

APPKEY = "bench-appkey"
SECRET = "bench-secret-0123456789"
RECIPIENTS = 1000
DISTINCT_LISTS = 50
TOKEN = "A" * 54


def free_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def build_bodies(
    lists: int = DISTINCT_LISTS, link: str = "http://127.0.0.1:8000/r/"
) -> list[tuple[bytes, bytes]]:
    """(before, after) the grouping key of `lists` request bodies."""
    bodies = []
    for list_no in range(lists):
        document = {
            "senderKey": "suwon-channel",
            "messageType": "ALIMTALK",
            "templateCode": "ALERT_V1",
            "title": "태풍 링링 대비 안내",
            "content": "태풍 링링이 북상 중입니다. 창문을 고정하고 외출을 자제하세요. " * 8,
            "buttons": [{"name": "자세히 보기", "linkMo": "#{link}"}],
            "isAd": False,
            "senderGroupingKey": "@KEY@",
            "recipientList": [
                {
                    "recipientNo": f"010{list_no * RECIPIENTS + i:08d}",
                    "recipientGroupingKey": str(list_no * RECIPIENTS + i),
                    "templateParameter": {"link": f"{link}{TOKEN}{list_no * RECIPIENTS + i}"},
                }
                for i in range(RECIPIENTS)
            ],
        }
        before, after = orjson.dumps(document).split(b'"@KEY@"')
        bodies.append((before, after))
    return bodies


async def drive(
    port: int, bodies: list[tuple[bytes, bytes]], first: int, batches: int, step: int
) -> list[float]:
    """Send batches first, first+step, ... on one connection; their latencies."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    latencies = []
    try:
        for n in range(first, batches, step):
            before, after = bodies[n % DISTINCT_LISTS]
            key = f"bench-{n // DISTINCT_LISTS}:0:{n}".encode()
            body = before + b'"' + key + b'"' + after
            head = (
                f"POST /v1/appkeys/{APPKEY}/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"X-Secret-Key: {SECRET}\r\nX-Idempotency-Key: {key.decode()}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            started = time.perf_counter()
            writer.write(head + body)
            status_and_headers = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in status_and_headers.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            response = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if (
                not status_and_headers.startswith(b"HTTP/1.1 200")
                or b'"resultCode":0' not in (response[:80])
            ):
                raise RuntimeError(f"batch {n} was not accepted: {status_and_headers[:40]!r}")
    finally:
        writer.close()
        await writer.wait_closed()
    return latencies


async def measure_taps(sandbox: SandboxClient, batches: int) -> dict[str, float | int]:
    """Taps a second the simulator makes when `batches` batches' worth fall due at once."""

    async def tap(request: Request) -> Response:
        response = RedirectResponse("/a/alert", status_code=302)
        if "allim_reader" not in request.cookies:
            response.set_cookie("allim_reader", uuid.uuid4().hex)
        return response

    async with serving(Starlette(routes=[Route("/r/{token}", tap)])) as url:
        await sandbox.reset()
        await sandbox.configure(profile="typical", time_scale=1e6, seed=1)
        started = time.perf_counter()
        for n in range(batches):
            before, after = build_bodies(lists=1, link=f"{url}/r/")[0]
            response = await sandbox.send(before + f'"taps:0:{n}"'.encode() + after)
            response.raise_for_status()
        while True:
            totals = (await sandbox.stats())["totals"]
            if not totals["taps_pending"]:
                await asyncio.sleep(0.5)
                if (await sandbox.stats())["totals"] == totals:
                    break
            await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - started - 0.5
    return {
        "sandbox_taps_per_s": round(totals["taps_made"] / elapsed),
        "sandbox_taps_made": totals["taps_made"],
        "sandbox_taps_failed": totals["taps_failed"],
    }


async def run(batches: int, connections: int, tap_batches: int) -> dict[str, float | int]:
    port = free_port()
    allim = Path(sys.executable).with_name("allim")
    env = os.environ | {
        "ALLIM_SANDBOX_APPKEY": APPKEY,
        "ALLIM_SANDBOX_SECRET_KEY": SECRET,
        "ALLIM_SANDBOX_PROFILE": "off",
        "ALLIM_LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        str(allim), "sandbox", "--port", str(port), env=env
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for _ in range(200):
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            sandbox = SandboxClient(http, APPKEY, SECRET)
            bodies = build_bodies()
            # warm up, then start from an empty ledger
            await drive(port, bodies, 0, 20, 1)
            await sandbox.reset()
            cpu_before = cpu_seconds(process.pid)
            started = time.perf_counter()
            parts = await asyncio.gather(
                *(drive(port, bodies, c, batches, connections) for c in range(connections))
            )
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(process.pid) - cpu_before
            stats = (await sandbox.stats())["totals"]
            ledgers = [
                await sandbox.ledger(f"bench-{a}")
                for a in range((batches + DISTINCT_LISTS - 1) // DISTINCT_LISTS)
            ]
            taps = await measure_taps(sandbox, tap_batches)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await process.wait()
    latencies = sorted(t for part in parts for t in part)
    recipients = batches * RECIPIENTS
    accepted = sum(ledger["accepted"] for ledger in ledgers)
    duplicates = sum(ledger["duplicates"] for ledger in ledgers)
    if stats["recipients_accepted"] != recipients or accepted != recipients or duplicates:
        raise RuntimeError(f"the ledger disagrees: {stats}, accepted {accepted}, dup {duplicates}")
    return {
        "sandbox_batches_per_s": round(batches / elapsed, 1),
        "sandbox_recipients_per_s": round(recipients / elapsed),
        "sandbox_recipients_per_cpu_s": round(recipients / cpu) if cpu else 0,
        "sandbox_cpu_seconds": round(cpu, 2),
        "sandbox_batch_latency_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "sandbox_batch_latency_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "batches": batches,
        "recipients": recipients,
        "connections": connections,
        "seconds": round(elapsed, 2),
    } | taps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 batches instead of 1,000")
    parser.add_argument("--connections", type=int, default=4, help="client connections")
    args = parser.parse_args()
    if args.quick:
        figures = asyncio.run(run(300, args.connections, tap_batches=2))
    else:
        figures = asyncio.run(run(1000, args.connections, tap_batches=8))
    print(orjson.dumps(figures).decode())


if __name__ == "__main__":
    main()
