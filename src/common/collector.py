"""Garbage-collector settings for allim's long-running processes.

A batch of 1,000 recipients allocates thousands of container objects (rows, recipients,
request and answer documents, outcomes), nearly all freed by reference counting moments
later. With CPython's default thresholds (700, 10, 10) a young collection ran several times
in the middle of every batch, each one moving the thousands of objects still in use to an
older generation that later collections walk again, a large share of the broadcaster's
CPU time (`bench/fanout.py` shows it).

So the automatic collections are made rare, and the young generations are collected on a
timer instead, between batches rather than in the middle of them. The timer is what keeps
memory flat: what is left in reference cycles waits for a collection (httpx leaves each
response in one with its stream and both bodies; the broadcaster's provider adapters cut it,
`broadcaster.providers.base.unbound`, but other clients and libraries make their own).
"""

from __future__ import annotations

import asyncio
import gc

# automatic young collections after this many net container allocations (default 700)
YOUNG_THRESHOLD = 50_000
# an automatic middle collection every this many young ones, a full one every this many
# middle ones
MIDDLE_EVERY = 20
OLD_EVERY = 10
# the timer's period: cyclic garbage waits at most this long, so memory stays flat
YOUNG_PERIOD_SECONDS = 1.0


def tune_collector(period: float = YOUNG_PERIOD_SECONDS) -> asyncio.Task[None]:
    """Freeze what start-up allocated, collect rarely on allocation, and on a timer.

    Called from a running event loop once set-up is done; the timer's task is returned, to
    be cancelled with the process's other background work. What is alive at the call
    (modules, classes, settings, clients) lives as long as the process; `gc.freeze` moves it
    out of every later collection. `bench/sender_memory.py` shows that peak memory stays flat.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_EVERY, OLD_EVERY)
    return asyncio.get_running_loop().create_task(_collect_young(period))


async def _collect_young(period: float) -> None:
    while True:
        await asyncio.sleep(period)
        # the two young generations: what the last period left, and what was in use then
        gc.collect(1)
