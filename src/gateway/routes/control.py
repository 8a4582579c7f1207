"""`POST /v1/alerts/{id}/pause` and `/resume`: hold a running alert, and let it go on."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter

from common.problems import Problem
from gateway import alert_views, audit, intake, pausing
from gateway.deps import OperatorDep, SessionDep, StateDep
from gateway.routes.responses import AUTH_ERRORS, INVALID, NOT_FOUND, problem_doc
from gateway.schemas import AlertPublic

router = APIRouter(prefix="/v1/alerts", tags=["delivery control"])


async def _change(
    alert_id: uuid.UUID,
    action: pausing.Action,
    principal: OperatorDep,
    state: StateDep,
    session: SessionDep,
) -> AlertPublic:
    try:
        await pausing.change(
            session, alert_id, action, audit.Actor.of(principal), datetime.now(UTC)
        )
    except intake.AlertNotFound as exc:
        raise Problem(404, "Not Found", str(exc)) from exc
    except pausing.PauseError as exc:
        raise Problem(409, "Conflict", str(exc), alert_status=exc.status) from exc
    state.wake_outbox()
    return await alert_views.load(session, alert_id)


@router.post(
    "/{alert_id}/pause",
    summary="Pause a queued, scheduled or sending alert: nothing more is sent until resumed",
    response_model=AlertPublic,
    responses={
        **AUTH_ERRORS,
        **NOT_FOUND,
        409: problem_doc(
            "The alert is not queued, scheduled or sending (waiting for approval, completed, "
            "cancelled, ...), or is paused already; `alert_status` says which."
        ),
        **INVALID,
    },
)
async def pause_alert(
    alert_id: uuid.UUID, principal: OperatorDep, state: StateDep, session: SessionDep
) -> AlertPublic:
    """Status `paused`; senders hold its batches within a second, also after a restart."""
    return await _change(alert_id, "pause", principal, state, session)


@router.post(
    "/{alert_id}/resume",
    summary="Resume a paused alert where it stopped",
    response_model=AlertPublic,
    responses={
        **AUTH_ERRORS,
        **NOT_FOUND,
        409: problem_doc("The alert is not paused, or has ended; `alert_status` says which."),
        **INVALID,
    },
)
async def resume_alert(
    alert_id: uuid.UUID, principal: OperatorDep, state: StateDep, session: SessionDep
) -> AlertPublic:
    """Its status again; the senders send what was not sent, each recipient once."""
    return await _change(alert_id, "resume", principal, state, session)
