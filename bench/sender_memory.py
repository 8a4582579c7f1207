"""Sender memory: peak resident set size of a sender process while it sends 1M, 5M and 10M.

Subscribers are streamed by keyset, never loaded whole, so a sender's memory must not grow
with the audience. One planner process and one sender process (no rate limit) send an alert
to everyone, first over 1,000,000 subscribers, then over 5,000,000, then (full run) over
10,000,000; the sender's RSS is sampled from /proc while it sends, and its peak (`VmHWM`,
the most it ever held, so each size's figure covers the smaller sends before it) read after
each broadcast.

    .venv/bin/python bench/sender_memory.py [--quick]   # 1M, 5M and 10M (quick: 1M and 5M)

Figures: sender_peak_rss_mb_1m, sender_peak_rss_mb_5m, sender_peak_rss_mb_10m (full run
only), sender_peak_rss_mb_10m_vs_1m, sender_rss_mb_idle (after the warm-up),
sender_rss_mb_samples_<size> (RSS at 25/50/75/100% of the broadcast). MB are MiB.
"""

from __future__ import annotations

import asyncio

from _clients import Sandbox, alerts, sandbox_client, warm_up
from _stack import WARMUP_TAG, load_subscribers, log, parse_args, report, stack, vm_kib
from cli.processes import Service
from common.messages import Audience
from raw_limit import size_name


async def sample_while_sending(
    sandbox: Sandbox, sender: Service, alert_id: str, size: int, services: tuple[Service, ...]
) -> list[float]:
    """RSS (MB) of the sender when the broadcast passes each quarter of `size`."""
    marks = [size // 4, size // 2, 3 * size // 4, size]
    samples: list[float] = []
    loop = asyncio.get_running_loop()
    stop = loop.time() + 900.0
    while marks:
        accepted = (await sandbox.ledger(alert_id))["accepted"]
        while marks and accepted >= marks[0]:
            samples.append(round(vm_kib(sender.pid, "VmRSS") / 1024, 1))
            marks.pop(0)
        if any(not s.alive() for s in services):
            raise RuntimeError("A broadcaster process died during the broadcast.")
        if loop.time() > stop:
            raise TimeoutError(f"Alert {alert_id}: {accepted} of {size} after 900 s.")
        await asyncio.sleep(0.25)
    return samples


async def main() -> None:
    # --quick keeps the sizes issue 7 names; the full run adds a national audience
    args = parse_args("Peak memory of a sender process against the audience size.")
    sizes = [1_000_000, 5_000_000] if args.quick else [1_000_000, 5_000_000, 10_000_000]
    figures: dict[str, object] = {"sender_memory_sizes": ",".join(map(str, sizes))}
    peaks: dict[str, float] = {}
    async with stack("memory") as bench:
        await load_subscribers(bench, 10, (WARMUP_TAG,))
        bench.start_sandbox()
        planner = bench.start_broadcaster("planner")
        sender = bench.start_broadcaster("sender")
        services = (planner, sender)
        async with sandbox_client(bench) as sandbox, alerts(bench) as posting:
            await warm_up(bench, posting, sandbox, services)
            figures["sender_rss_mb_idle"] = round(vm_kib(sender.pid, "VmRSS") / 1024, 1)
            for size in sizes:
                await load_subscribers(bench, size - bench.subscribers)
                await sandbox.reset()
                alert_id, _ = await posting.post(Audience(all=True))
                samples = await sample_while_sending(sandbox, sender, str(alert_id), size, services)
                peak = round(vm_kib(sender.pid, "VmHWM") / 1024, 1)
                peaks[size_name(size)] = peak
                figures[f"sender_peak_rss_mb_{size_name(size)}"] = peak
                figures[f"sender_rss_mb_samples_{size_name(size)}"] = samples
                log("%d recipients: sender RSS %s MB, peak %.1f MB", size, samples, peak)
                await sandbox.reset()
    largest = size_name(sizes[-1])
    figures[f"sender_peak_rss_mb_{largest}_vs_1m"] = round(peaks[largest] / peaks["1m"], 3)
    report(figures)


if __name__ == "__main__":
    asyncio.run(main())
