"""The raw limit: the fastest the same batches reach the same sandbox without the broadcaster.

A minimal loop that reads the active subscribers by keyset, renders the same tracked links,
builds the same request bodies with the same `KakaoProvider` and `httpx` client settings as
`allim broadcaster`, and posts them with the same number in flight: no Kafka, no shards, no
checkpoints, no events. `fanout.py` runs it beside the real broadcast for its ratio; run
alone, this script reports `raw_limit_seconds_<size>` for each size.

    .venv/bin/python bench/raw_limit.py [--quick]
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import uvloop

from _clients import Sandbox, sandbox_client
from _stack import WARMUP_TAG, Stack, load_subscribers, log, parse_args, report, stack
from broadcaster.config import BroadcasterSettings
from broadcaster.main import http_client, kakao_options
from broadcaster.providers.base import OutgoingBatch, Recipients
from broadcaster.providers.kakao import KakaoProvider
from common.collector import tune_collector
from common.tokens import TokenSigner

KEYSET = (
    "SELECT id, recipient_no FROM subscribers"
    " WHERE status = 'active' AND id > $1 ORDER BY id LIMIT $2"
)


def settings_for(bench: Stack) -> BroadcasterSettings:
    """The settings the broadcaster of this stack runs with (its defaults for the knobs)."""
    return BroadcasterSettings(
        _env_file=None,
        environment="test",
        database_url=bench.database_url,
        kafka_bootstrap=bench.kafka,
        tracking_secret=bench.tracking_secret,
        kakao_base_url=bench.sandbox_url,
        kakao_appkey=bench.sandbox_appkey,
        kakao_secret=bench.sandbox_secret,
    )


async def raw_send(bench: Stack) -> tuple[uuid.UUID, float]:
    """Post every active subscriber once to the sandbox; the alert id and the start time."""
    settings = settings_for(bench)
    alert_id = uuid.uuid4()
    expires = int(
        (datetime.now(UTC) + timedelta(days=settings.broadcaster_token_ttl_days)).timestamp()
    )
    sign = TokenSigner(settings.tracking_secret.get_secret_value().encode()).signer_for(
        alert_id, expires
    )
    base = settings.public_base_url.rstrip("/") + "/r/"
    size, in_flight = settings.broadcaster_batch_size, settings.broadcaster_max_in_flight
    queue: asyncio.Queue[OutgoingBatch | None] = asyncio.Queue(maxsize=in_flight * 2)

    async def read() -> None:
        connection = await asyncpg.connect(bench.dsn)
        try:
            keyset = await connection.prepare(KEYSET)
            after, seq = 0, 0
            while rows := await keyset.fetch(after, size):
                recipients = Recipients.render(rows, base, sign.sign)
                await queue.put(
                    OutgoingBatch(
                        batch_id=f"{alert_id}:0:{seq}",
                        alert_id=alert_id,
                        category="public",
                        message_type="ALIMTALK",
                        title="벤치마크 안내",
                        body="allim benchmark alert: please ignore.",
                        buttons=(),
                        recipients=recipients,
                    )
                )
                after, seq = rows[-1][0], seq + 1
        finally:
            await connection.close()
            for _ in range(in_flight):
                await queue.put(None)

    async with http_client(settings) as client:
        provider = KakaoProvider(client, kakao_options(settings))
        # as the broadcaster does, so the two are compared like with like
        collecting = tune_collector()

        async def post() -> None:
            while (batch := await queue.get()) is not None:
                await provider.send(batch)

        started = time.time()
        await asyncio.gather(read(), *(post() for _ in range(in_flight)))
        collecting.cancel()
    return alert_id, started


async def measure_raw(bench: Stack, sandbox: Sandbox) -> float:
    """Seconds from the raw loop's start to the last batch accepted at the sandbox."""
    alert_id, started = await raw_send(bench)
    ledger = await sandbox.wait_for(alert_id, bench.subscribers, 60.0)
    if ledger["duplicates"]:
        raise RuntimeError(f"The raw loop sent {ledger['duplicates']} duplicates.")
    return float(ledger["last_accepted_at"]) - started


def size_name(size: int) -> str:
    """100000 -> 100k, 1000000 -> 1m: the suffix of the figure names."""
    return f"{size // 1_000_000}m" if size % 1_000_000 == 0 else f"{size // 1000}k"


async def main() -> None:
    args = parse_args("The raw limit of posting batches to the sandbox.")
    sizes = [100_000, 450_000] if args.quick else [100_000, 450_000, 1_000_000]
    figures: dict[str, float | int | str] = {"raw_limit_sizes": ",".join(map(str, sizes))}
    async with stack("raw") as bench:
        await load_subscribers(bench, 10, (WARMUP_TAG,))
        bench.start_sandbox()
        async with sandbox_client(bench) as sandbox:
            for size in sizes:
                await load_subscribers(bench, size - bench.subscribers)
                seconds = await measure_raw(bench, sandbox)
                figures[f"raw_limit_seconds_{size_name(size)}"] = round(seconds, 3)
                log("raw loop: %d recipients in %.2f s", size, seconds)
                await sandbox.reset()
    report(figures)


if __name__ == "__main__":
    # the broadcaster runs on uvloop: so does the loop it is compared with
    uvloop.run(main())
