"""Settling in groups, with a publisher and a store that only record (the statement itself is
proven against PostgreSQL in test_sender.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any, cast

import pytest

from broadcaster.publishing import Publisher
from broadcaster.records import Settlement
from broadcaster.settling import Settler
from broadcaster.store import Store

A = uuid.UUID("00000000-0000-0000-0000-00000000000a")
B = uuid.UUID("00000000-0000-0000-0000-00000000000b")


def settlement(alert_id: uuid.UUID, seq: int) -> Settlement:
    return Settlement(f"{alert_id}:0:{seq}", alert_id, 0, seq, 1, 1, [], [], [], None)


class Recorder:
    """Publisher and store at once: remembers every call in order, can hold or fail them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_next: Exception | None = None
        self.settled_before: set[str] = set()

    async def deliveries(self, batches: Sequence[dict[str, Any]]) -> None:
        self.calls.append(("publish", [b["batch_id"] for b in batches]))
        await self.gate.wait()
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error

    async def settle(self, alert_id: uuid.UUID, group: Sequence[Settlement]) -> set[str]:
        assert all(s.alert_id == alert_id for s in group)
        self.calls.append(("settle", [s.batch_id for s in group]))
        return {s.batch_id for s in group} - self.settled_before


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def settler(recorder: Recorder) -> Settler:
    return Settler(cast(Store, recorder), cast(Publisher, recorder), max_group=3)


def submit(settler: Settler, s: Settlement) -> asyncio.Task[bool]:
    return asyncio.create_task(settler.settle(s, {"batch_id": s.batch_id}))


async def test_one_batch_alone_is_published_then_settled(
    settler: Settler, recorder: Recorder
) -> None:
    assert await settler.settle(settlement(A, 0), {"batch_id": f"{A}:0:0"})
    assert recorder.calls == [("publish", [f"{A}:0:0"]), ("settle", [f"{A}:0:0"])]


async def test_batches_that_arrive_while_a_group_settles_form_the_next_group(
    settler: Settler, recorder: Recorder
) -> None:
    recorder.gate.clear()
    first = submit(settler, settlement(A, 0))
    await asyncio.sleep(0.01)
    rest = [submit(settler, settlement(A, seq)) for seq in (1, 2, 3, 4)]
    await asyncio.sleep(0.01)
    recorder.gate.set()

    assert await asyncio.gather(first, *rest) == [True] * 5
    ids = [f"{A}:0:{seq}" for seq in range(5)]
    # at most max_group (3) per group; every group's events before its statement
    assert recorder.calls == [
        ("publish", ids[:1]),
        ("settle", ids[:1]),
        ("publish", ids[1:4]),
        ("settle", ids[1:4]),
        ("publish", ids[4:]),
        ("settle", ids[4:]),
    ]


async def test_a_group_holds_the_batches_of_one_alert(settler: Settler, recorder: Recorder) -> None:
    recorder.gate.clear()
    first = submit(settler, settlement(B, 0))
    await asyncio.sleep(0.01)
    waiting = [submit(settler, s) for s in (settlement(A, 1), settlement(B, 2), settlement(A, 3))]
    await asyncio.sleep(0.01)
    recorder.gate.set()
    await asyncio.gather(first, *waiting)

    groups = [batches for call, batches in recorder.calls if call == "settle"]
    assert groups == [[f"{B}:0:0"], [f"{A}:0:1", f"{A}:0:3"], [f"{B}:0:2"]]


async def test_a_failure_fails_its_group_and_not_the_next(
    settler: Settler, recorder: Recorder
) -> None:
    recorder.gate.clear()
    recorder.fail_next = ConnectionError("broker away")
    first = submit(settler, settlement(A, 0))
    await asyncio.sleep(0.01)
    second = submit(settler, settlement(A, 1))
    await asyncio.sleep(0.01)
    recorder.gate.set()

    with pytest.raises(ConnectionError):
        await first
    assert await second
    # the failed group was never settled: its batch stays `sending`, to be looked up
    assert ("settle", [f"{A}:0:0"]) not in recorder.calls


async def test_a_batch_settled_before_is_reported_so(settler: Settler, recorder: Recorder) -> None:
    recorder.settled_before = {f"{A}:0:0"}
    assert not await settler.settle(settlement(A, 0), {"batch_id": f"{A}:0:0"})
    assert await settler.settle(settlement(A, 1), {"batch_id": f"{A}:0:1"})


async def test_a_window_gathers_the_batches_that_come_within_it(recorder: Recorder) -> None:
    settler = Settler(cast(Store, recorder), cast(Publisher, recorder), max_group=10, window=0.2)
    first = submit(settler, settlement(A, 0))
    await asyncio.sleep(0.05)
    assert recorder.calls == []  # the oldest waits for the window to end
    rest = [submit(settler, settlement(A, seq)) for seq in (1, 2)]

    assert await asyncio.gather(first, *rest) == [True] * 3
    ids = [f"{A}:0:{seq}" for seq in range(3)]
    assert recorder.calls == [("publish", ids), ("settle", ids)]


async def test_a_full_group_does_not_wait_for_the_window(recorder: Recorder) -> None:
    settler = Settler(cast(Store, recorder), cast(Publisher, recorder), max_group=3, window=30.0)
    batches = [submit(settler, settlement(A, seq)) for seq in range(3)]

    async with asyncio.timeout(1.0):
        assert await asyncio.gather(*batches) == [True] * 3
    assert recorder.calls == [
        ("publish", [f"{A}:0:{seq}" for seq in range(3)]),
        ("settle", [f"{A}:0:{seq}" for seq in range(3)]),
    ]
