"""Settling in groups, with a publisher and a store that only record (the statement itself is
proven against PostgreSQL in test_sender.py), on a clock the tests move themselves."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Sequence
from typing import Any

import pytest
from tests.clocks import ManualClock

from broadcaster.records import Settlement
from broadcaster.settling import Settler

A = uuid.UUID("00000000-0000-0000-0000-00000000000a")
B = uuid.UUID("00000000-0000-0000-0000-00000000000b")


def settlement(alert_id: uuid.UUID, seq: int) -> Settlement:
    return Settlement(f"{alert_id}:0:{seq}", alert_id, 0, seq, 1, 1, [], [], [], None)


class Recorder:
    """Publisher and store at once: remembers every call in order, can hold or fail them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.publishing = asyncio.Event()  # set once a group is handed to the publisher
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_next: Exception | None = None
        self.settled_before: set[str] = set()

    async def deliveries(self, batches: Sequence[dict[str, Any]]) -> None:
        self.calls.append(("publish", [b["batch_id"] for b in batches]))
        self.publishing.set()
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
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def settler(recorder: Recorder, clock: ManualClock) -> Settler:
    return Settler(recorder, recorder, window=0.0, max_group=3, clock=clock)


async def submit(settler: Settler, s: Settlement) -> asyncio.Task[bool]:
    """Start settling `s`; returns once its batch waits in the settler (one loop turn)."""
    task = asyncio.create_task(settler.settle(s, {"batch_id": s.batch_id}))
    await asyncio.sleep(0)
    return task


async def first_of(*waits: Awaitable[object]) -> None:
    """Return once the first of `waits` is done; the coroutines among the others are ended."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for wait, task in zip(waits, tasks, strict=True):
        if task is not wait:
            task.cancel()


async def held(settler: Settler, recorder: Recorder, s: Settlement) -> asyncio.Task[bool]:
    """Settle `s` with publishing held: returns once its group waits at the publisher."""
    recorder.gate.clear()
    recorder.publishing.clear()
    task = asyncio.create_task(settler.settle(s, {"batch_id": s.batch_id}))
    await recorder.publishing.wait()
    return task


async def test_one_batch_alone_is_published_then_settled(
    settler: Settler, recorder: Recorder
) -> None:
    assert await settler.settle(settlement(A, 0), {"batch_id": f"{A}:0:0"})
    assert recorder.calls == [("publish", [f"{A}:0:0"]), ("settle", [f"{A}:0:0"])]


async def test_batches_that_arrive_while_a_group_settles_form_the_next_group(
    settler: Settler, recorder: Recorder
) -> None:
    first = await held(settler, recorder, settlement(A, 0))
    rest = [await submit(settler, settlement(A, seq)) for seq in (1, 2, 3, 4)]
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
    first = await held(settler, recorder, settlement(B, 0))
    waiting = [
        await submit(settler, s) for s in (settlement(A, 1), settlement(B, 2), settlement(A, 3))
    ]
    recorder.gate.set()
    await asyncio.gather(first, *waiting)

    groups = [batches for call, batches in recorder.calls if call == "settle"]
    assert groups == [[f"{B}:0:0"], [f"{A}:0:1", f"{A}:0:3"], [f"{B}:0:2"]]


async def test_a_failure_fails_its_group_and_not_the_next(
    settler: Settler, recorder: Recorder
) -> None:
    recorder.fail_next = ConnectionError("broker away")
    first = await held(settler, recorder, settlement(A, 0))
    second = await submit(settler, settlement(A, 1))
    recorder.gate.set()

    with pytest.raises(ConnectionError):
        await first
    assert await second
    # the failed group was never settled: its batch stays `sending`, to be looked up
    assert recorder.calls == [
        ("publish", [f"{A}:0:0"]),
        ("publish", [f"{A}:0:1"]),
        ("settle", [f"{A}:0:1"]),
    ]


async def test_a_batch_settled_before_is_reported_so(settler: Settler, recorder: Recorder) -> None:
    recorder.settled_before = {f"{A}:0:0"}
    assert not await settler.settle(settlement(A, 0), {"batch_id": f"{A}:0:0"})
    assert await settler.settle(settlement(A, 1), {"batch_id": f"{A}:0:1"})


async def test_a_window_gathers_the_batches_that_come_within_it(
    recorder: Recorder, clock: ManualClock
) -> None:
    settler = Settler(recorder, recorder, window=0.2, max_group=10, clock=clock)
    first = await submit(settler, settlement(A, 0))
    await first_of(first, clock.until_sleeping())
    # the oldest waits for the window to end, counted from its own arrival
    assert not first.done()
    assert clock.deadlines == [0.2]
    clock.advance(0.1)
    rest = [await submit(settler, settlement(A, seq)) for seq in (1, 2)]
    assert clock.deadlines == [0.2]
    assert recorder.calls == []

    clock.advance(0.1)
    assert await asyncio.gather(first, *rest) == [True] * 3
    ids = [f"{A}:0:{seq}" for seq in range(3)]
    assert recorder.calls == [("publish", ids), ("settle", ids)]


async def test_a_full_group_does_not_wait_for_the_window(
    recorder: Recorder, clock: ManualClock
) -> None:
    settler = Settler(recorder, recorder, window=30.0, max_group=3, clock=clock)
    batches = asyncio.gather(
        *(settler.settle(settlement(A, seq), {"batch_id": f"{A}:0:{seq}"}) for seq in range(3))
    )
    await first_of(batches, clock.until_sleeping())

    # settled with the clock not moved and nothing ever asleep on it
    assert batches.done()
    assert await batches == [True] * 3
    assert recorder.calls == [
        ("publish", [f"{A}:0:{seq}" for seq in range(3)]),
        ("settle", [f"{A}:0:{seq}" for seq in range(3)]),
    ]


def test_a_window_or_group_that_cannot_be_is_refused(recorder: Recorder) -> None:
    with pytest.raises(ValueError, match="make no sense"):
        Settler(recorder, recorder, window=-1.0)
    with pytest.raises(ValueError, match="make no sense"):
        Settler(recorder, recorder, window=0.2, max_group=0)
