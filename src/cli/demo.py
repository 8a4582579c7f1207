"""`allim demo`: the whole path on this machine, from an empty stack to the read rate.

It starts the sandbox, gateway, broadcaster and analytics as child processes on free
loopback ports, empties the audience (an earlier run's subscribers are deleted, and it says
how many), loads the subscribers through the gateway's streaming import, sends one
alert through the gateway, shows the broadcast and the reads live, and ends with the summary.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import text

from cli.admin import SubParsers
from cli.databases import run_migrations
from cli.processes import Service, ServiceGroup, free_port
from cli.stats import fetch_rollup
from common.config import CommonSettings
from common.db import create_engine, session_factory
from common.topics import ensure_topics
from gateway import audit
from gateway.auth import enrol
from reports.terminal import percent, render_report

# Suwon's four districts, and interests an operator may target
DISTRICTS = ("장안구", "권선구", "팔달구", "영통구")
TAGS = ("senior", "parent", "commuter", "student", "business")
# the local sandbox's own key, not a real dealer secret
SANDBOX_SECRET = "demo-sandbox-secret-key"
DEMO_ALERT = {
    "title": "[수원시] 내일 시내버스 파업 예고 안내",
    "body": (
        "내일(11월 26일) 첫차부터 시내버스 노조 파업이 예고되었습니다. "
        "전철과 마을버스, 임시 전세버스를 이용해 주시고 출근 시간을 여유 있게 계획해 주세요. "
        "임시 노선과 배차 정보는 아래 '자세히 보기'에서 확인하실 수 있습니다."
    ),
    "category": "public",
    "audience": {"all": True},
}


def subscriber_rows(count: int, seed: int) -> Iterator[bytes]:
    """A CSV of `count` subscribers, produced in chunks so nothing holds the whole file."""
    rng = random.Random(seed)
    yield b"recipient_no,district,tags\n"
    chunk: list[str] = []
    for n in range(count):
        tags = ";".join(rng.sample(TAGS, rng.randint(0, 2)))
        chunk.append(f"010{20_000_000 + n:08d},{DISTRICTS[n % len(DISTRICTS)]},{tags}\n")
        if len(chunk) == 10_000:
            yield "".join(chunk).encode()
            chunk.clear()
    if chunk:
        yield "".join(chunk).encode()


@dataclass(frozen=True)
class DemoPeople:
    """The two people of a demo run: one prepares the alert, the other approves it."""

    operator: str
    operator_key: str
    approver: str
    approver_key: str


async def demo_people(database_url: str) -> DemoPeople:
    """A fresh operator and approver, each with a key, stored like any others."""
    run = uuid.uuid4().hex[:6]
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_factory(engine)() as session, session.begin():
            operator, operator_key = await enrol(session, f"demo-operator-{run}", "operator")
            approver, approver_key = await enrol(session, f"demo-approver-{run}", "approver")
            for user in (operator, approver):
                detail = {"name": user.name, "role": user.role, "password": False}
                audit.record(session, audit.Actor(name="allim demo"), "user.create", detail=detail)
            return DemoPeople(operator.name, operator_key, approver.name, approver_key)
    finally:
        await engine.dispose()


async def empty_audience(database_url: str) -> int:
    """Delete every subscriber, so the alert reaches exactly the ones this run imports;
    how many there were."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as connection:
            removed = await connection.execute(text("DELETE FROM subscribers"))
            return int(removed.rowcount or 0)
    finally:
        await engine.dispose()


def approve(console: Console, gateway: str, people: DemoPeople, alert_id: str) -> None:
    """The approver approves the operator's alert, if it waits for approval."""
    headers = {"X-API-Key": people.approver_key}
    with httpx.Client(base_url=gateway, headers=headers, timeout=30.0) as client:
        state = client.get(f"/v1/alerts/{alert_id}").json()
        if state["status"] != "pending_approval":
            return
        approved = client.post(f"/v1/alerts/{alert_id}/approve")
        approved.raise_for_status()
    console.print(f"{people.approver} approved it: {approved.json()['status']}")


def start_services(
    group: ServiceGroup, args: argparse.Namespace, logs: Path, gateway_port: int | None = None
) -> dict[str, str]:
    """Start the four services (the gateway on `gateway_port`, else a free port like the
    others); return their base URLs."""
    gateway_port, sandbox_port = gateway_port or free_port(), free_port()
    gateway = f"http://127.0.0.1:{gateway_port}"
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    shared = {"ALLIM_PUBLIC_BASE_URL": gateway, "ALLIM_LOG_LEVEL": "WARNING"}
    group.start(
        Service(
            "sandbox",
            ["sandbox"],
            {
                **shared,
                "ALLIM_SANDBOX_PORT": str(sandbox_port),
                "ALLIM_SANDBOX_SECRET_KEY": SANDBOX_SECRET,
                "ALLIM_SANDBOX_PROFILE": args.profile,
                "ALLIM_SANDBOX_TIME_SCALE": str(args.time_scale),
                "ALLIM_SANDBOX_SEED": str(args.seed),
                "ALLIM_SANDBOX_TAP_CONCURRENCY": "64",
                # a real channel has friends who stopped using KakaoTalk, or never did
                "ALLIM_SANDBOX_INACTIVE_SHARE": "0.012",
                "ALLIM_SANDBOX_NON_KAKAO_SHARE": "0.004",
            },
            f"{sandbox}/healthz",
            logs / "sandbox.log",
        )
    )
    group.start(
        Service(
            "gateway",
            ["gateway"],
            {**shared, "ALLIM_GATEWAY_PORT": str(gateway_port), "ALLIM_GATEWAY_WORKERS": "2"},
            f"{gateway}/readyz",
            logs / "gateway.log",
        )
    )
    group.start(
        Service(
            "analytics",
            ["analytics"],
            {**shared, "ALLIM_ANALYTICS_METRICS_PORT": str(free_port())},
            None,
            logs / "analytics.log",
        )
    )
    group.start(
        Service(
            "broadcaster",
            ["broadcaster", "--role", "all"],
            {
                **shared,
                "ALLIM_BROADCASTER_METRICS_PORT": str(free_port()),
                "ALLIM_KAKAO_BASE_URL": sandbox,
                "ALLIM_KAKAO_APPKEY": "allim-sandbox",
                "ALLIM_KAKAO_SECRET": SANDBOX_SECRET,
                # those KakaoTalk refuses get the alert by SMS/LMS from the sandbox's dealer
                "ALLIM_BROADCASTER_SMS_BASE_URL": sandbox,
                "ALLIM_BROADCASTER_SMS_APPKEY": "allim-sandbox",
                "ALLIM_BROADCASTER_SMS_SECRET": SANDBOX_SECRET,
                "ALLIM_BROADCASTER_SMS_SEND_NO": "15880000",
            },
            None,
            logs / "broadcaster.log",
        )
    )
    return {"gateway": gateway, "sandbox": sandbox}


def poll_json(url: str, headers: dict[str, str] | None = None) -> Any:
    """GET a JSON document; on a busy machine a slow answer is retried, not fatal."""
    attempt = 0
    while True:
        try:
            response = httpx.get(url, headers=headers, timeout=30.0)
            response.raise_for_status()
            return response.json()
        except httpx.TransportError:
            attempt += 1
            if attempt == 5:
                raise
            time.sleep(attempt)


def import_subscribers(console: Console, gateway: str, key: str, count: int, seed: int) -> None:
    """Stream the subscribers CSV to the gateway's import and print its report."""
    started = time.monotonic()
    with console.status(f"Importing {count:,} subscribers through the gateway ..."):
        response = httpx.post(
            f"{gateway}/v1/subscribers:import",
            content=subscriber_rows(count, seed),
            headers={"Content-Type": "text/csv", "X-API-Key": key},
            timeout=600,
        )
    response.raise_for_status()
    report = response.json()
    console.print(
        f"Imported: {report['accepted']:,} accepted, {report['rejected']:,} rejected "
        f"in {time.monotonic() - started:.1f} s"
    )


def follow_broadcast(console: Console, gateway: str, key: str, alert_id: str) -> dict[str, Any]:
    """Show delivery progress until the alert reaches a terminal status; its last status."""
    headers = {"X-API-Key": key}
    with Progress(
        TextColumn("[bold]Sending[/bold]"),
        BarColumn(),
        TextColumn("{task.fields[counts]}"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("send", total=None, counts="planning", rate="")
        started = time.monotonic()
        while True:
            status = poll_json(f"{gateway}/v1/alerts/{alert_id}", headers)
            done = status["delivered"] + status["failed"]
            elapsed = max(time.monotonic() - started, 1e-6)
            progress.update(
                task,
                total=status["targeted"] or None,
                completed=done,
                counts=f"{done:,}/{status['targeted']:,} {status['status']}",
                rate=f"{done / elapsed:,.0f} msg/s",
            )
            if status["status"] in ("completed", "cancelled", "failed"):
                return dict(status)
            time.sleep(0.25)


def follow_reads(console: Console, gateway: str, sandbox: str, key: str, alert_id: str) -> None:
    """Show readers arriving until the simulated people have made every tap they will make."""
    quiet_since: float | None = None
    last_readers = -1
    last_line = 0.0
    with console.status("Waiting for people to read ...") as status_line:
        while True:
            rollup = fetch_rollup(gateway, key, uuid.UUID(alert_id))
            pending = poll_json(f"{sandbox}/_sandbox/stats")["totals"]["taps_pending"]
            readers = rollup.readers
            line = (
                f"Readers {readers:,}  read rate {percent(rollup.read_rate)}  "
                f"forwarded {rollup.forwarded_readers:,}  taps still to come {pending:,}"
            )
            status_line.update(line)
            if not console.is_terminal and time.monotonic() - last_line > 15:
                # a spinner shows nothing in a log: a line every 15 s instead
                console.print(line)
                last_line = time.monotonic()
            if pending == 0 and readers == last_readers:
                quiet_since = quiet_since or time.monotonic()
                # analytics publishes within 2 s; three quiet seconds means all is counted
                if time.monotonic() - quiet_since > 3:
                    return
            else:
                quiet_since = None
            last_readers = readers
            time.sleep(0.5)


def console_hint(people: DemoPeople) -> str:
    """How to open the operator console on this run's data as its two people."""
    return (
        "The operator console on this data: `make console` runs the services until Ctrl-C and "
        f"prints its address and fresh passwords for {people.operator} (operator) and "
        f"{people.approver} (approver)."
    )


def _demo(args: argparse.Namespace) -> int:
    console = Console()
    settings = CommonSettings()
    logs = Path(args.logs)
    console.rule("allim demo")
    run_migrations(settings.database_url)
    asyncio.run(ensure_topics(settings.kafka_bootstrap))
    group = ServiceGroup()
    with group.running():
        urls = start_services(group, args, logs)
        console.print(
            f"Services up (logs in {logs}/): gateway {urls['gateway']}, sandbox {urls['sandbox']}"
        )
        people = asyncio.run(demo_people(settings.database_url))
        key = people.operator_key
        console.print(
            f"Created the operator {people.operator} (prepares the alert) and the approver "
            f"{people.approver} (approves it): a person's alert waits for a second person."
        )
        removed = asyncio.run(empty_audience(settings.database_url))
        if removed:
            # an earlier run's subscribers would be sent to as well: 100,000 asked, 450,000 sent
            console.print(
                f"Removed {removed:,} subscribers left by an earlier run: the demo's audience "
                f"is the {args.subscribers:,} it imports now."
            )
        import_subscribers(console, urls["gateway"], key, args.subscribers, args.seed)
        posted = httpx.post(
            f"{urls['gateway']}/v1/alerts",
            json=DEMO_ALERT,
            headers={"X-API-Key": key, "Idempotency-Key": f"demo-{uuid.uuid4()}"},
            timeout=30.0,
        )
        posted.raise_for_status()
        alert_id = posted.json()["id"]
        console.print(
            f"Alert {alert_id} accepted ({posted.json()['status']}): {DEMO_ALERT['title']}"
        )
        approve(console, urls["gateway"], people, alert_id)
        follow_broadcast(console, urls["gateway"], key, alert_id)
        follow_reads(console, urls["gateway"], urls["sandbox"], key, alert_id)
        render_report(fetch_rollup(urls["gateway"], key, uuid.UUID(alert_id)), console)
    console.print("Kafka and PostgreSQL keep running: `make down` stops them.")
    console.print(console_hint(people))
    return 0


def simulation_flags(parser: argparse.ArgumentParser) -> None:
    """The sandbox's flags that `start_services` reads: profile, time scale and seed."""
    parser.add_argument(
        "--profile",
        default="typical",
        choices=["typical", "viral", "quiet"],
        help="how the simulated recipients read and forward",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=3600.0,
        help="how many times faster than real time simulated people read",
    )
    parser.add_argument("--seed", type=int, default=20261125, help="seed for repeatable runs")


def register(subparsers: SubParsers) -> None:
    """Add `demo`."""
    demo = subparsers.add_parser("demo", help="run the whole path on this machine and summarise")
    demo.add_argument("--subscribers", type=int, default=450_000, help="audience size")
    simulation_flags(demo)
    demo.add_argument(
        "--logs",
        default=os.environ.get("ALLIM_DEMO_LOGS", ".local/dev/logs"),
        help="folder of the services' logs",
    )
    demo.set_defaults(handler=_demo)
