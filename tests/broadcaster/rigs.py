"""The pipe's test rig: a shard pipe on the real store and broker, with a fake dealer (it
remembers accepted batch ids and answers each recipient with a code the test chooses), an
unlimited rate limiter, and the planner that writes the shards it runs."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from broadcaster.control import Control, Priority
from broadcaster.deps import InFlight, SenderDeps, SendOptions
from broadcaster.errors import AlreadyAcceptedError, PermanentProviderError
from broadcaster.metrics import BroadcasterMetrics
from broadcaster.pipe import ShardPipe
from broadcaster.planner import Planner
from broadcaster.providers.base import BatchResult, OutgoingBatch, Quota
from broadcaster.publishing import Publisher
from broadcaster.settling import Settler
from broadcaster.store import Store
from common.events import CloudEvent
from common.messages import ShardTask
from common.readback import Records, read_back
from common.tokens import TokenSigner

Code = Callable[[int, int], int]  # (subscriber id, attempt of that subscriber) -> result code


OPTIONS = SendOptions(
    batch_size=100,
    public_base_url="http://127.0.0.1:8000",
    token_ttl_days=30,
    retry_base=0.01,
    retry_cap=0.05,
    error_threshold=2,
    progress_seconds=2.0,
)


class WallClock:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def events_of(
    bootstrap: str, topic: str, alert_id: uuid.UUID, until: Callable[[list[CloudEvent]], bool]
) -> list[CloudEvent]:
    """The CloudEvents of one alert on `topic`, read from the start until `until(events)`
    (and a little longer, so that one more shows)."""

    def decoded(records: Records) -> list[CloudEvent]:
        return [CloudEvent.from_record(r.headers, r.value) for r in records]

    found = await read_back(
        bootstrap, topic, {str(alert_id)}, enough=lambda records: until(decoded(records))
    )
    return decoded(found)


def has_completed(events: list[CloudEvent]) -> bool:
    """A stop rule: the alert's `completed` event is among `events`."""
    return any(e.type == "dev.allim.alert.completed" for e in events)


@dataclass
class Dealer:
    """A provider that remembers accepted batch ids, like the real one."""

    code: Code = lambda sid, attempt: 1000
    latency: float = 0.0
    refuse: int | None = None  # answer every send with this HTTP status
    before_send: Callable[[OutgoingBatch], Awaitable[None]] | None = None
    sends: list[OutgoingBatch] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)  # unix time of each send
    accepted: dict[str, BatchResult] = field(default_factory=dict)
    attempts: dict[int, int] = field(default_factory=dict)

    async def send(self, batch: OutgoingBatch) -> BatchResult:
        if self.before_send is not None:
            await self.before_send(batch)
        self.sends.append(batch)
        self.sent_at.append(time.time())
        await asyncio.sleep(self.latency)
        if self.refuse is not None:
            raise PermanentProviderError("refused", self.refuse)
        if batch.batch_id in self.accepted:
            raise AlreadyAcceptedError(batch.batch_id)
        ids = batch.recipients.subscriber_ids
        codes = []
        for sid in ids:
            self.attempts[sid] = self.attempts.get(sid, 0) + 1
            codes.append(self.code(sid, self.attempts[sid]))
        messages = {sid: str(code) for sid, code in zip(ids, codes, strict=True) if code != 1000}
        self.accepted[batch.batch_id] = BatchResult(batch.batch_id, list(ids), codes, messages)
        return self.accepted[batch.batch_id]

    async def lookup(self, batch_id: str) -> BatchResult | None:
        return self.accepted.get(batch_id)

    def recipients(self) -> list[int]:
        """Every subscriber id sent to, with repeats."""
        return [sid for b in self.sends for sid in b.recipients.subscriber_ids]


class Unlimited:
    """A rate limiter that never waits."""

    async def acquire(self, messages: int) -> None:
        return None

    async def throttled(self, retry_after: float | None) -> None:
        return None

    async def server_error(self) -> None:
        return None

    async def succeeded(self, quotas: Sequence[Quota] = ()) -> None:
        return None


@dataclass
class Rig:
    deps: SenderDeps
    dealer: Dealer
    planner: Planner
    store: Store
    sms: Dealer = field(default_factory=Dealer)  # the fallback's dealer, when deps.sms has it

    async def plan(self, alert_id: uuid.UUID) -> list[ShardTask]:
        assert await self.planner.plan(alert_id) == "planned"
        rows = await self.store.pool.fetch(
            "SELECT s.shard_no, s.first_id, s.last_id, a.category,"
            " (SELECT count(*) FROM shards WHERE alert_id = $1) AS n"
            " FROM shards s JOIN alerts a ON a.id = s.alert_id WHERE s.alert_id = $1"
            " ORDER BY shard_no",
            alert_id,
        )
        return [
            ShardTask(
                alert_id=alert_id,
                shard_no=r["shard_no"],
                category=r["category"],
            )
            for r in rows
        ]

    async def run(self, task: ShardTask, stopping: asyncio.Event | None = None) -> str:
        return await ShardPipe(self.deps, task, stopping or asyncio.Event()).run()

    async def alert(self, alert_id: uuid.UUID) -> Any:
        return await self.store.pool.fetchrow("SELECT * FROM alerts WHERE id = $1", alert_id)


def make_rig(store: Store, producer: AIOKafkaProducer) -> Rig:
    """A rig on the session's store and producer, with a fresh dealer."""
    dealer = Dealer()
    publisher = Publisher(producer)
    metrics = BroadcasterMetrics()
    deps = SenderDeps(
        store=store,
        provider=dealer,
        limiter=Unlimited(),
        publisher=publisher,
        settler=Settler(store, publisher, window=0.0),
        control=Control(),
        priority=Priority(),
        metrics=metrics,
        signer=TokenSigner(b"test-tracking-secret-0123456789"),
        in_flight=InFlight(4),
        options=OPTIONS,
        held_until=lambda category, now: None,
        brand_resume_at=lambda now: now + timedelta(seconds=0.3),
    )
    return Rig(deps, dealer, Planner(store, publisher, metrics, shard_size=250), store)
