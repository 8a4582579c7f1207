"""How cost grows with the audience, and the same broadcast with 1, 2 and 3 sender processes.

    .venv/bin/python bench/scale.py [--quick]

1. Senders: one broadcast to `S` subscribers (1,000,000; quick 100,000) with a planner and
   1, then 2, then 3 sender processes (`allim broadcaster --role sender`), one after the
   other on the same stack and the same sandbox, no rate limit. `senders_<n>_vs_1` is the
   speed-up over one sender measured side by side in this run; on a 2-core machine the
   extra processes share the same two cores.
2. Audience: with one sender, broadcasts to 100,000 up to 10,000,000 subscribers (quick:
   100,000 and 200,000), the audience grown by COPY between them. Per size: seconds from
   handing the alert over to the sandbox accepting its last batch, recipients/s, the seconds
   to its first accepted batch (the planner's walk of the audience is in it), the CPU
   seconds the broadcaster processes and the PostgreSQL server spent per 100,000 recipients
   (user + system time from /proc; the server's include its backends that exited), which
   is what the broadcast costs whatever the machine's speed, and the sender's peak
   resident set so far (`VmHWM`). After the largest send, the connections the planner and
   the sender hold in PostgreSQL (`scale_db_connections`) and the size on disk of
   `subscribers` (table and indexes) per million subscribers, and of `batches` and `shards`
   per million recipients sent in that database.
3. Import: a CSV of 10,000,000 subscribers (quick 100,000), written line by line to disk,
   through `allim import` against `allim gateway` on an empty database: rows/s over the
   command's wall time (upload, COPY and upsert), the gateway's peak resident set, and the
   size of the imported `subscribers` (with district and tags, as an operator's file has
   them) per million.
4. The shared rate bucket: one `rate_buckets` row leased with the senders' own statement
   by 1, 10, 50 and 100 concurrent lessees (a connection each, as many sender processes
   would), each leasing again as soon as its lease returns, for 5 s (quick 2 s): the leases
   a second the row takes, and the 99th percentile of a lease's round trip.
5. Read rate over time: an alert to 100,000 subscribers, sampled for 60 s (quick: 20,000 for
   30 s), through the whole system (gateway, broadcaster, analytics) with the sandbox's
   recipient simulator on, profile `typical`, its clock 360 (quick 720) times faster than real
   time; analytics' readers / delivered every 0.5 s from the first delivery it counted
   (`series_read_rate`, `read_rate_final`).

Figures: senders_<n>_seconds, senders_<n>_recipients_per_s, senders_2_vs_1, senders_3_vs_1,
scale_seconds_<size>, scale_recipients_per_s_<size>, scale_first_batch_s_<size>,
scale_cpu_s_per_100k_<size>, scale_pg_cpu_s_per_100k_<size>,
scale_sender_peak_rss_mb_<size>, scale_cpu_<largest>_vs_1m (CPU per 100k at the largest size
over that at 1M), pg_subscribers_mb_per_1m, pg_subscribers_table_mb, pg_subscribers_indexes_mb,
pg_batches_mb, pg_batches_rows, pg_batches_mb_per_1m_sent, pg_shards_mb, pg_shards_rows,
pg_shards_mb_per_1m_sent, import_rows_per_s_<size>, import_wall_s_<size>,
import_gateway_peak_rss_mib_<size>, pg_imported_subscribers_mb_per_1m,
bucket_leases_per_s_<lessees>, bucket_lease_p99_ms_<lessees>, scale_db_connections,
scale_duplicates,
read_rate_final, series_read_rate. MB are MiB (2^20 bytes).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from _clients import Alerts, Sandbox, alerts, sandbox_client, warm_up
from _costs import (
    MIB,
    broadcaster_connections,
    cpu_seconds,
    postgres_cpu_seconds,
    postmaster_pid,
    size_figures,
    table_sizes,
)
from _stack import (
    WARMUP_TAG,
    Stack,
    load_subscribers,
    log,
    parse_args,
    percentile,
    report,
    stack,
    vm_kib,
)
from _system import System, running_system
from broadcaster.buckets import Buckets
from broadcaster.store import Store
from cli.processes import Service
from common.messages import Audience
from raw_limit import size_name
from reports.figures import read_rate
from taps import run_import, tree_rss_mib, write_csv


async def timed_broadcast(
    bench: Stack,
    posting: Alerts,
    sandbox: Sandbox,
    services: tuple[Service, ...],
    postmaster: int | None = None,
) -> dict[str, float]:
    """One alert to everyone: seconds to the last and to the first accepted batch, CPU
    seconds of `services` and of the PostgreSQL server, and duplicates at the sandbox."""
    await sandbox.reset()
    cpu_before = sum(cpu_seconds(s.pid) for s in services)
    pg_before = postgres_cpu_seconds(postmaster)
    alert_id, handed_over = await posting.post(Audience(all=True))
    ledger = await sandbox.wait_for(alert_id, bench.subscribers, 1800.0, services)
    outcome = {
        "seconds": float(ledger["last_accepted_at"]) - handed_over,
        "first_batch_s": float(ledger["first_accepted_at"]) - handed_over,
        "cpu": sum(cpu_seconds(s.pid) for s in services) - cpu_before,
        "pg_cpu": postgres_cpu_seconds(postmaster) - pg_before,
        "duplicates": int(ledger["duplicates"]),
    }
    await sandbox.reset()
    return outcome


async def bucket_capacity(bench: Stack, lessees: int, seconds: float) -> dict[str, float]:
    """Leases a second one `rate_buckets` row takes from `lessees` processes' worth of
    connections, each leasing again as soon as its last lease returned: the row's ceiling.

    The statement is the senders' own (`Buckets.lease_bucket`); the lessees do not wait out
    the debt it answers, so the row is leased as fast as PostgreSQL commits it.
    """
    rate = 150_000.0  # about what one machine sends (fanout_recipients_per_s_1m)
    name = f"bench{lessees}:messages"
    # the pool as a sender's store makes it
    store = await Store.connect(bench.dsn, lessees)
    buckets = Buckets(store.pool)
    try:
        await buckets.ensure_bucket(name, rate, rate, rate * 0.1, None)
        latencies: list[float] = []
        stop = time.perf_counter() + seconds

        async def lessee() -> None:
            while (started := time.perf_counter()) < stop:
                lease = await buckets.lease_bucket(
                    name,
                    rate * 0.1,  # one lease of ALLIM_BROADCASTER_RATE_LEASE_SECONDS (0.1)
                    ceiling=rate,
                    step=0.0,
                    recover=False,
                    cooldown=1.0,
                    burst=None,
                    at=None,
                )
                if lease is None:
                    raise RuntimeError("The benchmark's rate bucket row is gone.")
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(lessee() for _ in range(lessees)))
        took = time.perf_counter() - began
    finally:
        await store.close()
    log("rate bucket, %d lessees: %.0f leases/s", lessees, len(latencies) / took)
    return {
        f"bucket_leases_per_s_{lessees}": round(len(latencies) / took),
        f"bucket_lease_p99_ms_{lessees}": round(1000 * percentile(latencies, 0.99), 2),
    }


async def import_audience(rows: int) -> dict[str, Any]:
    """`allim import` of a `rows`-line CSV into an empty database: its figures."""
    name = size_name(rows)
    async with stack("import") as bench:
        gateway = bench.start_gateway(log_level="WARNING")
        key = await bench.operator_key()
        path = bench.workdir / "subscribers.csv"
        started = time.perf_counter()
        await asyncio.to_thread(write_csv, path, rows)
        log(
            "wrote %d rows (%.0f MiB) in %.1f s",
            rows,
            path.stat().st_size / MIB,
            time.perf_counter() - started,
        )
        try:
            imported, took = await asyncio.to_thread(run_import, path, bench.gateway_url, key)
        finally:
            path.unlink()  # hundreds of MB at the full size
        if imported["accepted"] != rows or imported["created"] != rows:
            raise RuntimeError(f"Import accepted {imported['accepted']} of {rows}: {imported}")
        log("imported %d rows in %.1f s", rows, took)
        sizes = await table_sizes(bench.dsn)
        subscribers = sizes["subscribers"]
        return {
            f"import_rows_per_s_{name}": round(rows / took),
            f"import_wall_s_{name}": round(took, 1),
            f"import_gateway_peak_rss_mib_{name}": round(tree_rss_mib(gateway.pid, "VmHWM"), 1),
            "pg_imported_subscribers_mb_per_1m": round(
                subscribers["total"] / MIB / subscribers["rows"] * 1e6, 1
            ),
        }


async def read_rate_series(audience: int, seconds: float, time_scale: float) -> dict[str, Any]:
    """Readers / delivered of one alert, every second for `seconds`, simulator on."""
    async with stack("readrate") as bench:
        await load_subscribers(bench, audience)
        system = System(bench, senders=1, analytics=True)
        async with running_system(system):
            await system.provider.configure(profile="typical", time_scale=time_scale, seed=7)
            alert_id = await system.post_alert("read rate")
            # people read relative to when they got the message: the clock starts at the
            # first delivery analytics counted, not at the POST
            deadline = time.monotonic() + 120
            while (await system.read_counts(alert_id))[0] == 0:
                if time.monotonic() > deadline:
                    raise TimeoutError("Analytics counted no delivery within 120 s.")
                await asyncio.sleep(0.2)
            delivered_at = time.monotonic()
            times: list[float] = []
            rates: list[float] = []
            while (elapsed := time.monotonic() - delivered_at) < seconds:
                delivered, readers = await system.read_counts(alert_id)
                rate = read_rate(readers, delivered)
                assert rate is not None  # deliveries were counted before, and only grow
                times.append(round(elapsed, 2))
                rates.append(round(rate, 4))
                await asyncio.sleep(0.5)
            log("read rate after %.0f s (x%g): %.3f", seconds, time_scale, rates[-1])
    return {"t_s": times, "read_rate": rates, "time_scale": time_scale, "profile": "typical"}


async def main() -> None:
    args = parse_args("How cost grows with the audience; 1, 2 and 3 sender processes.")
    senders_size = 100_000 if args.quick else 1_000_000
    sizes = (
        [100_000, 200_000]
        if args.quick
        else [100_000, 450_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000]
    )
    figures: dict[str, Any] = {"scale_sizes": ",".join(map(str, sizes))}
    duplicates = 0
    sent = 0  # recipients sent in this database, warm-ups aside
    async with stack("scale") as bench:
        await load_subscribers(bench, 10, (WARMUP_TAG,))
        postmaster = await postmaster_pid(bench.dsn)
        figures["scale_pg_cpu_measured"] = postmaster is not None
        bench.start_sandbox()
        planner = bench.start_broadcaster("planner", 0)
        senders = [bench.start_broadcaster("sender", 1)]
        async with sandbox_client(bench) as sandbox, alerts(bench) as posting:
            await warm_up(bench, posting, sandbox, (planner, *senders))
            for size in sizes:
                await load_subscribers(bench, size - bench.subscribers)
                outcome = await timed_broadcast(
                    bench, posting, sandbox, (planner, *senders), postmaster
                )
                duplicates += int(outcome["duplicates"])
                sent += size
                seconds = outcome["seconds"]
                name = size_name(size)
                figures[f"scale_seconds_{name}"] = round(seconds, 3)
                figures[f"scale_recipients_per_s_{name}"] = round(size / seconds)
                figures[f"scale_first_batch_s_{name}"] = round(outcome["first_batch_s"], 3)
                figures[f"scale_cpu_s_per_100k_{name}"] = round(outcome["cpu"] * 100_000 / size, 3)
                if postmaster is not None:
                    figures[f"scale_pg_cpu_s_per_100k_{name}"] = round(
                        outcome["pg_cpu"] * 100_000 / size, 3
                    )
                figures[f"scale_sender_peak_rss_mb_{name}"] = round(
                    vm_kib(senders[0].pid, "VmHWM") / 1024, 1
                )
                log(
                    "%d recipients: %.2f s (first batch %.2f s), %.1f CPU s, PostgreSQL %.1f",
                    size,
                    seconds,
                    outcome["first_batch_s"],
                    outcome["cpu"],
                    outcome["pg_cpu"],
                )
                if size != senders_size:
                    continue
                # the same broadcast with 2 and 3 sender processes, beside the one above
                figures["senders_1_seconds"] = round(seconds, 3)
                figures["senders_1_recipients_per_s"] = round(size / seconds)
                for count in (2, 3):
                    senders.append(bench.start_broadcaster("sender", count))
                    # the group rebalances as the new member joins: let it settle first
                    await warm_up(bench, posting, sandbox, (planner, *senders))
                    await asyncio.sleep(3)
                    more = await timed_broadcast(bench, posting, sandbox, (planner, *senders))
                    duplicates += int(more["duplicates"])
                    sent += size
                    figures[f"senders_{count}_seconds"] = round(more["seconds"], 3)
                    figures[f"senders_{count}_recipients_per_s"] = round(size / more["seconds"])
                    figures[f"senders_{count}_vs_1"] = round(seconds / more["seconds"], 3)
                    log("%d senders: %d recipients in %.2f s", count, size, more["seconds"])
                while len(senders) > 1:
                    await asyncio.to_thread(senders.pop().stop)
                await warm_up(bench, posting, sandbox, (planner, *senders))
                await asyncio.sleep(3)
            figures["scale_db_connections"] = await broadcaster_connections(bench.dsn)
        figures |= size_figures(await table_sizes(bench.dsn), sent)
    largest = size_name(sizes[-1])
    if "scale_cpu_s_per_100k_1m" in figures and largest != "1m":
        figures[f"scale_cpu_{largest}_vs_1m"] = round(
            figures[f"scale_cpu_s_per_100k_{largest}"] / figures["scale_cpu_s_per_100k_1m"], 3
        )
    figures["scale_duplicates"] = duplicates
    figures |= await import_audience(100_000 if args.quick else 10_000_000)
    async with stack("bucket") as bench:
        for lessees in (1, 10, 50, 100):
            figures |= await bucket_capacity(bench, lessees, 2.0 if args.quick else 5.0)
    if args.quick:
        series = await read_rate_series(20_000, 30.0, 720.0)
    else:
        series = await read_rate_series(100_000, 60.0, 360.0)
    figures["read_rate_final"] = series["read_rate"][-1]
    report({**figures, "series_read_rate": series})


if __name__ == "__main__":
    asyncio.run(main())
