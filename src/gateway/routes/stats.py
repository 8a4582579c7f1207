"""Alert statistics: the rollup and the reads-per-minute series of the read model (viewer role)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from common.problems import PROBLEM_JSON, Problem
from gateway.deps import SessionDep, ViewerDep
from reports.rollups import AlertRollup, load_rollup

router = APIRouter(prefix="/v1", tags=["stats"])


@router.get(
    "/alerts/{alert_id}/stats",
    summary="How an alert was delivered and read",
    response_model=AlertRollup,
    responses={404: {"description": "No such alert", "content": {PROBLEM_JSON: {}}}},
)
async def alert_stats(alert_id: uuid.UUID, _: ViewerDep, session: SessionDep) -> AlertRollup:
    """Delivered, failed, readers, forwards, read rate, and reads per minute of one alert."""
    rollup = await load_rollup(session, alert_id)
    if rollup is None:
        raise Problem(404, "Not Found", f"Alert '{alert_id}' is unknown.")
    return rollup
