"""The collector settings every long-running process applies after start-up."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from tests.waiting import eventually

from common.collector import MIDDLE_EVERY, OLD_EVERY, YOUNG_THRESHOLD, tune_collector


class Node:
    other: Node | None = None


@pytest.fixture(autouse=True)
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


async def test_start_up_objects_are_frozen_and_collections_are_rarer() -> None:
    survivor = {"made": "before tune_collector"}

    tune_collector().cancel()

    assert gc.get_threshold() == (YOUNG_THRESHOLD, MIDDLE_EVERY, OLD_EVERY)
    assert gc.get_freeze_count() > 0
    # frozen objects are left out of every collection, so none lists them
    assert all(o is not survivor for o in gc.get_objects())


async def test_the_timer_frees_cyclic_garbage_without_an_allocation_trigger() -> None:
    collecting = tune_collector(period=0.05)
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        assert gone() is not None  # a cycle: reference counting alone does not free it

        # freed by the timer, which runs every 0.05 s: nothing here allocates enough to
        # trigger a collection by the counts
        await eventually(lambda: gone() is None, 10, what="collected")
    finally:
        collecting.cancel()
