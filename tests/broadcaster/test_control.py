"""`Control` remembers cancelled and paused alerts without growing for the life of a process."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from broadcaster.control import Control
from common.messages import AlertControl


def _command(alert_id: uuid.UUID, action: str) -> AlertControl:
    return AlertControl.model_validate(
        {"alert_id": alert_id, "action": action, "requested_at": datetime.now(UTC)}
    )


def test_cancel_pause_and_resume() -> None:
    control = Control()
    paused, cancelled = uuid.uuid4(), uuid.uuid4()
    control.apply(_command(paused, "pause"))
    control.apply(_command(cancelled, "pause"))
    control.apply(_command(cancelled, "cancel"))

    assert control.is_paused(paused) and not control.is_cancelled(paused)
    assert control.is_cancelled(cancelled) and not control.is_paused(cancelled)
    control.apply(_command(paused, "resume"))
    assert not control.is_paused(paused)
    assert control.remembered() == 1


def test_alerts_not_running_here_are_forgotten_beyond_the_limit() -> None:
    control = Control(remembered=3)
    alerts = [uuid.uuid4() for _ in range(5)]
    for alert_id in alerts:
        control.cancel(alert_id)

    assert [control.is_cancelled(a) for a in alerts] == [False, False, True, True, True]
    assert control.remembered() == 3


def test_alerts_running_here_are_kept_past_the_limit() -> None:
    control = Control(remembered=2)
    running = uuid.uuid4()
    control.running(running)
    control.cancel(running)
    others = [uuid.uuid4() for _ in range(4)]
    for alert_id in others:
        control.cancel(alert_id)

    assert control.is_cancelled(running)
    assert [control.is_cancelled(a) for a in others] == [False, False, False, True]
    assert control.watched() == [running]
    control.finished(running)
    assert control.watched() == []
    control.cancel(uuid.uuid4())
    assert not control.is_cancelled(running)
