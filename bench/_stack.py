"""What the broadcaster benchmarks share to set up a run: a fresh database with subscribers
loaded by COPY, the sandbox, gateway and broadcaster as child processes on free loopback ports,
Kafka's consumer groups moved past earlier runs; and the small helpers every script uses
(progress on stderr, the figures on stdout, `--quick`, /proc memory, percentiles).

Posting alerts to the stack and reading the sandbox's ledger back are in `_clients.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.engine import make_url

from analytics.config import AnalyticsSettings
from broadcaster.config import BroadcasterSettings
from cli.databases import scratch_database
from cli.processes import Service, ServiceGroup, free_port
from common import topics
from common.db import asyncpg_dsn, create_engine, session_factory
from gateway.auth import enrol

ROOT = Path(__file__).resolve().parents[1]
WARMUP_TAG = "bench-warmup"
SMALL_TAG = "bench-small"


def log(message: str, *args: object) -> None:
    """Progress on stderr, so stdout's last line stays the figures."""
    print(
        f"[{time.strftime('%H:%M:%S')}] " + (message % args if args else message), file=sys.stderr
    )


def report(figures: dict[str, Any]) -> None:
    """Print the figures as the last line of stdout."""
    print(json.dumps(figures, sort_keys=True))


def parse_args(description: str) -> argparse.Namespace:
    """`--quick`, the option every benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (under 2 minutes)")
    return parser.parse_args()


def recipient_no(subscriber_id: int) -> str:
    """The phone number of a benchmark subscriber."""
    return f"010{subscriber_id:08d}"


@dataclass
class Stack:
    """A fresh database on the data stack, and what the services need to find each other."""

    name: str
    server_url: str
    kafka: str
    database_url: str = ""
    workdir: Path = field(default_factory=Path)
    tracking_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    sandbox_appkey: str = "allim-bench"
    sandbox_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    sandbox_send_no: str = "0312281000"  # the sender number the sandbox's SMS dealer registered
    sandbox_url: str = ""
    gateway_url: str = ""
    subscribers: int = 0  # active subscribers loaded, ids 1..subscribers
    group: ServiceGroup = field(default_factory=ServiceGroup)

    @property
    def dsn(self) -> str:
        """The database as a plain asyncpg DSN."""
        return asyncpg_dsn(self.database_url)

    def common_env(self) -> dict[str, str]:
        """Environment every allim child process gets."""
        return {
            "ALLIM_ENVIRONMENT": "test",
            "ALLIM_DATABASE_URL": self.database_url,
            "ALLIM_KAFKA_BOOTSTRAP": self.kafka,
            "ALLIM_TRACKING_SECRET": self.tracking_secret,
            "ALLIM_LOG_LEVEL": "INFO",
        }

    def broadcaster_env(self, **settings: object) -> dict[str, str]:
        """Environment of `allim broadcaster` pointed at this stack's sandbox.

        With no rate given the senders send unlimited (`ALLIM_BROADCASTER_RATE_LEARN=false`):
        the benchmarks measure allim's own pace against the sandbox, not how fast it finds a
        dealer's limit (bench/rate_learned.py turns learning on).
        """
        env = self.common_env() | {
            "ALLIM_KAKAO_BASE_URL": self.sandbox_url,
            "ALLIM_KAKAO_APPKEY": self.sandbox_appkey,
            "ALLIM_KAKAO_SECRET": self.sandbox_secret,
            # the sandbox's SMS dealer, for the recipients that fall back to SMS/LMS
            "ALLIM_BROADCASTER_SMS_BASE_URL": self.sandbox_url,
            "ALLIM_BROADCASTER_SMS_APPKEY": self.sandbox_appkey,
            "ALLIM_BROADCASTER_SMS_SECRET": self.sandbox_secret,
            "ALLIM_BROADCASTER_SMS_SEND_NO": self.sandbox_send_no,
            "ALLIM_BROADCASTER_RATE_LEARN": "false",
        }
        env |= {f"ALLIM_{k.upper()}": str(v) for k, v in settings.items()}
        return env

    def start_sandbox(self, **behaviour: object) -> Service:
        """`allim sandbox` on a free port, simulator off unless `behaviour` says otherwise."""
        port = free_port()
        self.sandbox_url = f"http://127.0.0.1:{port}"
        env = self.common_env() | {
            "ALLIM_SANDBOX_PORT": str(port),
            "ALLIM_SANDBOX_APPKEY": self.sandbox_appkey,
            "ALLIM_SANDBOX_SECRET_KEY": self.sandbox_secret,
            "ALLIM_SANDBOX_SMS_SEND_NO": self.sandbox_send_no,
            "ALLIM_SANDBOX_PROFILE": "off",
            "ALLIM_LOG_LEVEL": "WARNING",
        }
        env |= {f"ALLIM_SANDBOX_{k.upper()}": str(v) for k, v in behaviour.items()}
        service = Service(
            "sandbox",
            ["sandbox"],
            env,
            f"{self.sandbox_url}/_sandbox/stats",
            self.workdir / "sandbox.log",
        )
        return self.group.start(service)

    def start_gateway(self, source: Path | None = None, **settings: object) -> Service:
        """`allim gateway` on a free port (ready when /readyz answers); its URL in `gateway_url`.

        With `source`, the gateway runs the code of that `src` folder (an older revision's,
        to compare with) instead of the working tree's."""
        port = free_port()
        self.gateway_url = f"http://127.0.0.1:{port}"
        env = self.common_env() | {
            "ALLIM_GATEWAY_PORT": str(port),
            "ALLIM_PUBLIC_BASE_URL": self.gateway_url,
            # the benchmarks and failure scenarios measure sending, not people: an alert goes
            # out when it is posted (tests/gateway/test_approval.py covers approval)
            "ALLIM_GATEWAY_APPROVAL_REQUIRED": "false",
        }
        env |= {f"ALLIM_{k.upper()}": str(v) for k, v in settings.items()}
        if source is not None:
            # ahead of the editable install's path to the working tree's src
            env["PYTHONPATH"] = str(source)
        service = Service(
            "gateway", ["gateway"], env, f"{self.gateway_url}/readyz", self.workdir / "gateway.log"
        )
        return self.group.start(service)

    async def operator_key(self) -> str:
        """A new operator's API key in this stack's database (what `allim users create` and
        `allim keys create` do)."""
        engine = create_engine(self.database_url, pool_size=1)
        try:
            async with session_factory(engine)() as session, session.begin():
                name = f"bench {self.name} {uuid.uuid4().hex[:8]}"
                _, key = await enrol(session, name, "operator")
                return key
        finally:
            await engine.dispose()

    def start_broadcaster(self, role: str = "all", index: int = 0, **settings: object) -> Service:
        """`allim broadcaster --role <role>` with its metrics on a free port."""
        port = free_port()
        env = self.broadcaster_env(broadcaster_metrics_port=port, **settings)
        service = Service(
            f"broadcaster-{role}-{index}",
            ["broadcaster", "--role", role],
            env,
            f"http://127.0.0.1:{port}/metrics",
            self.workdir / f"broadcaster-{role}-{index}.log",
        )
        return self.group.start(service)


@contextlib.asynccontextmanager
async def stack(name: str) -> AsyncIterator[Stack]:
    """A fresh, migrated database for one benchmark run; services stopped, database dropped."""
    server_url = os.environ.get("ALLIM_DATABASE_URL")
    kafka = os.environ.get("ALLIM_KAFKA_BOOTSTRAP")
    if not server_url or not kafka:
        raise SystemExit(
            "ALLIM_DATABASE_URL and ALLIM_KAFKA_BOOTSTRAP must point at the data stack "
            "(deploy/local/stack.sh up <dir>, then source <dir>/stack.env)."
        )
    workdir = ROOT / ".local" / "bench" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    workdir.mkdir(parents=True, exist_ok=True)
    async with scratch_database(server_url, f"allim_bench_{name}") as url:
        bench = Stack(name, server_url, kafka, url, workdir)
        try:
            await topics.ensure_topics(kafka)
            await skip_history(kafka)
            log("database %s, logs in %s", make_url(url).database, workdir)
            yield bench
        finally:
            await asyncio.to_thread(bench.group.stop_all)


# allim's consumer groups (the defaults of their settings) and the topics each one reads
GROUPS = {
    BroadcasterSettings.model_fields["broadcaster_planner_group"].default: (
        topics.ALERTS_REQUESTED,
    ),
    BroadcasterSettings.model_fields["broadcaster_sender_group"].default: (
        topics.BROADCAST_SHARDS,
        topics.BROADCAST_SHARDS_URGENT,
    ),
    AnalyticsSettings.model_fields["analytics_group_id"].default: (
        topics.DELIVERIES,
        topics.ENGAGEMENT,
        topics.ALERT_EVENTS,
    ),
}


async def skip_history(kafka: str, groups: dict[str, tuple[str, ...]] = GROUPS) -> None:
    """Commit each group's offsets at the end of its topics: this run reads this run only.

    The data stack outlives a benchmark run, and the records of earlier runs name alerts of
    databases that are gone; a group that last ran long ago would first dead-letter them all.
    """
    for group, names in groups.items():
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            partitions = topics.partitions(*names)
            consumer.assign(partitions)
            await consumer.seek_to_end(*partitions)
            await consumer.commit({tp: await consumer.position(tp) for tp in partitions})
        finally:
            await consumer.stop()


async def end_offsets(kafka: str, *names: str) -> dict[TopicPartition, int]:
    """Where the named topics end now: what a run makes after this is read from here.

    The data stack outlives a run, so the topics hold every earlier run's records too.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=None)
    await consumer.start()
    try:
        ends: dict[TopicPartition, int] = await consumer.end_offsets(topics.partitions(*names))
        return ends
    finally:
        await consumer.stop()


def _rows(first: int, count: int, tags: list[str]) -> Iterator[tuple[int, str, list[str]]]:
    for subscriber_id in range(first, first + count):
        yield (subscriber_id, recipient_no(subscriber_id), tags)


async def load_subscribers(bench: Stack, count: int, tags: tuple[str, ...] = ()) -> range:
    """Append `count` active subscribers with COPY (ids follow the last one); their ids."""
    first = bench.subscribers + 1
    started = time.perf_counter()
    connection = await asyncpg.connect(bench.dsn)
    try:
        step = 200_000
        for offset in range(0, count, step):
            await connection.copy_records_to_table(
                "subscribers",
                records=_rows(first + offset, min(step, count - offset), list(tags)),
                columns=["id", "recipient_no", "tags"],
            )
        await connection.execute(
            "SELECT setval(pg_get_serial_sequence('subscribers', 'id'), $1)", first + count - 1
        )
        # the keyset walk is an index-only scan once the visibility map is set
        await connection.execute("VACUUM ANALYZE subscribers")
        await quiet_checkpoint(connection)
    finally:
        await connection.close()
    bench.subscribers += count
    log("loaded %d subscribers in %.1f s", count, time.perf_counter() - started)
    return range(first, first + count)


async def quiet_checkpoint(connection: asyncpg.Connection) -> None:
    """Write out what a load left dirty now, rather than under the next measurement.

    A million subscribers are about 580 MB of WAL: past `max_wal_size` PostgreSQL starts a
    checkpoint, spread over minutes, that writes the load's pages while whatever is timed
    next runs; in `fanout.py` that was the broadcaster, never the raw loop after it.
    """
    try:
        await connection.execute("CHECKPOINT")
    except asyncpg.InsufficientPrivilegeError:
        log(
            "CHECKPOINT needs a superuser or pg_checkpoint: the load's pages are written "
            "during the next measurement"
        )


def vm_kib(pid: int, field_name: str) -> int:
    """A `VmRSS`/`VmHWM`-style field of /proc/<pid>/status, in KiB (0 if the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return 0
    for line in text.splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (0..1) of `values`, nearest-rank."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("No values to take a percentile of.")
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]
