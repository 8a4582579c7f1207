"""Garbage-collector settings for allim's long-running processes.

A batch of 1,000 recipients allocates some 5,000 container objects (rows, recipients,
request and answer documents, outcomes), nearly all freed by reference counting moments
later. With CPython's default thresholds (700, 10, 10) that ran a young collection several
times per batch and, every hundred of those, a full one over everything the process had
imported: a third of the broadcaster's CPU time in `bench/fanout.py`. Every long-running
process calls `tune_collector` once its start-up is done.
"""

from __future__ import annotations

import gc

# young collections after this many net container allocations (default 700)
YOUNG_THRESHOLD = 50_000
# a middle collection every this many young ones, a full one every this many middle ones
MIDDLE_EVERY = 20
OLD_EVERY = 10


def tune_collector() -> None:
    """Collect less often, and never again look at what start-up allocated.

    What is alive after imports and set-up (modules, classes, settings, clients) lives as
    long as the process; `gc.freeze` moves it out of every later collection. Cyclic garbage
    is still collected, just in larger rounds; `bench/sender_memory.py` shows that peak
    memory stays flat.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_EVERY, OLD_EVERY)
