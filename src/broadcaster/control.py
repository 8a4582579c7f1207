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
        elif command.action == "pause":
            if command.alert_id not in self._cancelled:
                self._paused.add(command.alert_id, self._running)
        else:
            self._paused.discard(command.alert_id)
        self.changes.changed()

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
