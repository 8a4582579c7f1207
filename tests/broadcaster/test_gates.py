"""The gate of a shard's pipe: it answers, waits on events, and changes nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from tests.waiting import Watched

from broadcaster.clock import LoopClock
from broadcaster.control import Control, Priority
from broadcaster.gates import Gate, Held, due_later
from common.messages import AlertControl, Category

ALERT = uuid.UUID("00000000-0000-0000-0000-000000000002")
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def gate(
    category: Category = "public",
    expires_at: datetime | None = None,
    held_until: datetime | None = None,
) -> tuple[Gate, Control, Priority, asyncio.Event]:
    control, priority, stopping = Control(), Priority(), asyncio.Event()
    made = Gate(
        ALERT,
        category,
        expires_at,
        stopping,
        control,
        priority,
        lambda category, now: held_until,
        LoopClock(),
        lambda: NOW,
    )
    return made, control, priority, stopping


def command(action: str) -> AlertControl:
    return AlertControl.model_validate({"alert_id": ALERT, "action": action, "requested_at": NOW})


async def test_an_open_gate_answers_open() -> None:
    made, *_ = gate()

    assert await made.wait() == "open"


async def test_an_expired_alert_is_answered_expired_and_not_cancelled_by_the_check() -> None:
    made, control, *_ = gate(expires_at=NOW)

    assert await made.wait() == "expired"
    assert not control.is_cancelled(ALERT)


async def test_quiet_hours_hold_normal_alerts_and_not_urgent_ones() -> None:
    later = NOW + timedelta(hours=3)
    normal, *_ = gate("promotional", held_until=later)
    urgent, *_ = gate("emergency", held_until=later)

    assert await normal.wait() == Held(later)
    assert await urgent.wait() == "open"


async def test_a_paused_alert_waits_until_it_is_resumed() -> None:
    made, control, _, _ = gate()
    control.changes = watched = Watched()
    control.apply(command("pause"))
    waiting = asyncio.create_task(made.wait())
    await asyncio.wait_for(watched.waited.wait(), 30)
    assert not waiting.done()

    control.apply(command("resume"))

    assert await asyncio.wait_for(waiting, 30) == "open"


async def test_a_resume_just_after_the_gate_looked_is_not_missed() -> None:
    made, control, _, _ = gate()
    control.apply(command("pause"))
    waiting = asyncio.create_task(made.wait())
    # runs after the gate found the alert paused and before its waits first run
    asyncio.get_running_loop().call_soon(control.apply, command("resume"))

    assert await asyncio.wait_for(waiting, 30) == "open"


async def test_normal_shards_wait_for_urgent_ones_and_a_stop_ends_every_wait() -> None:
    made, _, priority, stopping = gate()
    priority.changes = watched = Watched()
    priority.urgent_arrived()
    waiting = asyncio.create_task(made.wait())
    await asyncio.wait_for(watched.waited.wait(), 30)
    assert not waiting.done()

    stopping.set()

    assert await asyncio.wait_for(waiting, 30) == "halted"


async def test_a_cancel_wakes_a_sleeping_pipe() -> None:
    made, control, _, _ = gate()
    control.changes = watched = Watched()
    sleeping = asyncio.create_task(made.sleep(3600))
    await asyncio.wait_for(watched.waited.wait(), 30)

    control.cancel(ALERT)

    await asyncio.wait_for(sleeping, 30)


class SleepingClock(LoopClock):
    """The loop's clock, telling when someone sleeps by it."""

    def __init__(self) -> None:
        self.slept = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.slept.set()
        await super().sleep(seconds)


async def test_a_look_up_of_a_cancelled_alert_sleeps_until_the_sender_stops() -> None:
    made, control, _, stopping = gate()
    made.clock = clock = SleepingClock()
    control.cancel(ALERT)

    looking = asyncio.create_task(made.sleep(3600, until_cancelled=False))
    await asyncio.wait_for(clock.slept.wait(), 30)
    assert not looking.done()

    stopping.set()
    await asyncio.wait_for(looking, 30)


def test_a_held_batch_is_waited_for_in_the_pipe_only_when_due_soon() -> None:
    assert not due_later(None, NOW)
    assert not due_later(NOW + timedelta(seconds=5), NOW)
    assert due_later(NOW + timedelta(seconds=6), NOW)
