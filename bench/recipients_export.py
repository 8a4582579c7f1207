"""Who got it, read back: the failures and deliveries of a 450,000-recipient alert as CSV,
and single look-ups, through `allim gateway` over HTTP.

The alert is sent first (one `allim broadcaster --role all`, no rate limit) to 450,000
subscribers with the sandbox refusing 2% of them for good (3018), and no fallback, so both
lists are large. Then each export is read to its end as a client would (`Accept: text/csv`,
streamed), and 200 recipients are looked up one by one.

    .venv/bin/python bench/recipients_export.py [--quick]     # --quick: 100,000

Figures: recipients_csv_rows_per_s (the deliveries' export), recipients_csv_failed_rows_per_s,
recipients_csv_delivered_rows, recipients_csv_failed_rows, recipients_lookup_ms_p50 and _p99.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from typing import Any

import httpx
import uvloop

from _clients import sandbox_client
from _stack import load_subscribers, log, parse_args, recipient_no, report, stack
from common.messages import Audience


async def _export(client: httpx.AsyncClient, url: str, outcome: str) -> tuple[int, float]:
    """(rows, seconds) of reading one export to its end."""
    started = time.perf_counter()
    rows = -1  # the header
    async with client.stream(
        "GET",
        url,
        params={"outcome": outcome},
        headers={"Accept": "text/csv"},
        timeout=httpx.Timeout(30.0, read=600.0),
    ) as answer:
        answer.raise_for_status()
        async for chunk in answer.aiter_bytes():
            rows += chunk.count(b"\n")
    return rows, time.perf_counter() - started


async def main() -> None:
    args = parse_args("Who got it: the failures and deliveries as CSV, and single look-ups.")
    size = 100_000 if args.quick else 450_000
    figures: dict[str, Any] = {"recipients_audience": size}
    async with stack("recipients") as bench:
        ids = await load_subscribers(bench, size)
        bench.start_sandbox(inactive_share=0.02)
        bench.start_broadcaster("all")
        bench.start_gateway()
        api_key = await bench.operator_key()
        headers = {"X-API-Key": api_key}
        async with sandbox_client(bench) as sandbox, httpx.AsyncClient(headers=headers) as client:
            body = {
                "title": "벤치마크 안내",
                "body": "allim benchmark alert: please ignore.",
                "category": "public",
                "audience": Audience(all=True).model_dump(exclude_none=True),
                "fallback": {"enabled": False},
            }
            posted = await client.post(f"{bench.gateway_url}/v1/alerts", json=body, timeout=60)
            posted.raise_for_status()
            alert_id = uuid.UUID(posted.json()["id"])
            await sandbox.wait_for(alert_id, int(size * 0.97), 900.0)
            await _wait_completed(client, bench.gateway_url, alert_id)
            url = f"{bench.gateway_url}/v1/alerts/{alert_id}/recipients"
            for outcome in ("delivered", "failed"):
                rows, seconds = await _export(client, url, outcome)
                log("%s export: %d rows in %.2f s", outcome, rows, seconds)
                key = "" if outcome == "delivered" else "_failed"
                figures[f"recipients_csv{key}_rows_per_s"] = round(rows / seconds)
                figures[f"recipients_csv_{outcome}_rows"] = rows
            rng = random.Random(7)
            spent = []
            for subscriber_id in rng.sample(list(ids), 200):
                number = recipient_no(subscriber_id)
                started = time.perf_counter()
                answer = await client.get(f"{url}/{number}")
                spent.append((time.perf_counter() - started) * 1000)
                answer.raise_for_status()
            spent.sort()
            figures["recipients_lookup_ms_p50"] = round(statistics.median(spent), 2)
            figures["recipients_lookup_ms_p99"] = round(spent[int(len(spent) * 0.99) - 1], 2)
    report(figures)


async def _wait_completed(client: httpx.AsyncClient, gateway: str, alert_id: uuid.UUID) -> None:
    """Until the broadcaster has settled every batch (status completed)."""
    started = time.monotonic()
    while time.monotonic() - started < 900:
        shown = (await client.get(f"{gateway}/v1/alerts/{alert_id}")).json()
        if shown["status"] == "completed":
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"alert {alert_id} did not complete")


if __name__ == "__main__":
    uvloop.run(main())
