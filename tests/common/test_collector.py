"""The collector settings every long-running process applies after start-up."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from common.collector import MIDDLE_EVERY, OLD_EVERY, YOUNG_THRESHOLD, tune_collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_start_up_objects_are_frozen_and_collections_are_rarer() -> None:
    survivor = {"made": "before tune_collector"}

    tune_collector()

    assert gc.get_threshold() == (YOUNG_THRESHOLD, MIDDLE_EVERY, OLD_EVERY)
    assert gc.get_freeze_count() > 0
    # frozen objects are left out of every collection, so they are not tracked in one
    assert all(o is not survivor for o in gc.get_objects())


@pytest.mark.usefixtures("restored_collector")
def test_cyclic_garbage_made_afterwards_is_still_collected() -> None:
    tune_collector()

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a  # type: ignore[attr-defined]
    del a, b

    assert gc.collect() >= 2
