"""What may be sent right now: cancelled and paused alerts, and urgent shards first.

`Control` is the in-memory view a sender checks before every batch; `control_feed` keeps it
current from the `alerts.control` topic and the alerts table. `Priority` holds normal
shards back while urgent ones are waiting or running.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Coroutine
from typing import Any, Literal

from common.messages import AlertControl

# how many alerts not running here a process remembers as cancelled or paused: a shard that
# arrives after its alert was forgotten still reads the alert's status when it starts
REMEMBERED = 10_000


class Changes:
    """Wakes whoever waits for the next change, once for each change."""

    def __init__(self) -> None:
        self._next = asyncio.Event()

    def wait(self) -> Coroutine[Any, Any, Literal[True]]:
        """What to await for the next change after now.

        Not a coroutine function: the change waited for is the next one after the call, not
        after the awaiting task first runs, so a change made in between is not missed.
        """
        return self._next.wait()

    def changed(self) -> None:
        """A change: wake every waiter, and make later ones wait for the next."""
        self._next.set()
        self._next = asyncio.Event()


class _Remembered:
    """An insertion-ordered set that forgets its oldest members not `kept` beyond `limit`."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._ids: dict[uuid.UUID, None] = {}

    def __contains__(self, alert_id: object) -> bool:
        return alert_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, alert_id: uuid.UUID, kept: Counter[uuid.UUID]) -> None:
        self._ids.pop(alert_id, None)
        self._ids[alert_id] = None
        if len(self._ids) <= self._limit:
            return
        for old in list(self._ids):
            if len(self._ids) <= self._limit:
                break
            if old not in kept:
                del self._ids[old]

    def discard(self, alert_id: uuid.UUID) -> None:
        self._ids.pop(alert_id, None)


class Control:
    """Cancelled and paused alerts, as this process knows them.

    An alert is remembered while shards of it run here; beyond that, only the latest
    `remembered` cancelled and paused alerts are kept, so the sets do not grow for the life
    of the process.
    """

    def __init__(self, remembered: int = REMEMBERED) -> None:
        self._cancelled = _Remembered(remembered)
        self._paused = _Remembered(remembered)
        self._running: Counter[uuid.UUID] = Counter()
        # when a running alert was last paused or resumed here (the loop's clock): the poll
        # of the alerts table only corrects what changed before its read began
        self._changed_at: dict[uuid.UUID, float] = {}
        self._waiting: Counter[uuid.UUID] = Counter()  # shards waiting for a resume
        self.changes = Changes()  # a cancel, a pause or a resume

    def is_cancelled(self, alert_id: uuid.UUID) -> bool:
        """True once the alert was cancelled (or failed) by anyone."""
        return alert_id in self._cancelled

    def cancel(self, alert_id: uuid.UUID) -> None:
        """Stop the alert's batches that are not sent yet."""
        self._paused.discard(alert_id)
        self._cancelled.add(alert_id, self._running)
        self.changes.changed()

    def apply(self, command: AlertControl) -> None:
        """Apply an operator's command from `alerts.control`."""
        if command.action == "cancel":
            self.cancel(command.alert_id)
        else:
            self.hold(command.alert_id, command.action == "pause")

    def hold(self, alert_id: uuid.UUID, paused: bool) -> None:
        """Pause the alert's batches here (`paused`), or let them go again."""
        if paused and alert_id not in self._cancelled:
            self._paused.add(alert_id, self._running)
        elif not paused:
            self._paused.discard(alert_id)
        if alert_id in self._running:
            self._changed_at[alert_id] = asyncio.get_running_loop().time()
        self.changes.changed()

    def waiting(self, alert_id: uuid.UUID, delta: int) -> None:
        """A shard of the alert starts (1) or stops (-1) waiting for a resume here."""
        self._waiting[alert_id] += delta
        if self._waiting[alert_id] <= 0:
            del self._waiting[alert_id]

    def held_shards(self, alert_id: uuid.UUID | None = None) -> int:
        """Shards waiting for a resume here: of one alert, or of all."""
        if alert_id is not None:
            return self._waiting[alert_id]
        return sum(self._waiting.values())

    def changed_since(self, alert_id: uuid.UUID, when: float) -> bool:
        """Whether the alert was paused or resumed here at or after `when` (the loop's clock)."""
        return self._changed_at.get(alert_id, float("-inf")) >= when

    def is_paused(self, alert_id: uuid.UUID) -> bool:
        """True while an operator holds the alert paused (and has not cancelled it)."""
        return alert_id in self._paused and alert_id not in self._cancelled

    def running(self, alert_id: uuid.UUID) -> None:
        """A shard of the alert started here: watch it in the database too."""
        self._running[alert_id] += 1

    def finished(self, alert_id: uuid.UUID) -> None:
        """A shard of the alert ended here."""
        self._running[alert_id] -= 1
        if self._running[alert_id] <= 0:
            del self._running[alert_id]
            self._changed_at.pop(alert_id, None)

    def watched(self) -> list[uuid.UUID]:
        """The alerts with shards running here, whose status the database poll reads."""
        return list(self._running)

    def remembered(self) -> int:
        """How many alerts this process holds as cancelled or paused."""
        return len(self._cancelled) + len(self._paused)


class Priority:
    """Urgent shards first: normal shards wait while any urgent shard is pending or sending."""

    def __init__(self) -> None:
        self._urgent = 0
        self.changes = Changes()  # an urgent shard arrived or finished

    @property
    def urgent(self) -> int:
        """Urgent shards pending or running in this process."""
        return self._urgent

    def urgent_arrived(self) -> None:
        """An urgent shard was received: hold normal batches from now on."""
        self._urgent += 1
        self.changes.changed()

    def urgent_done(self) -> None:
        """An urgent shard finished or was given up."""
        self._urgent = max(0, self._urgent - 1)
        self.changes.changed()
