"""`/v1/alerts/{id}/approve`, `/reject`, `/preview` and `/test`: what comes before sending."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, cast

from fastapi import APIRouter
from pydantic import BaseModel, Field

from common.messages import Audience
from common.models import Alert
from common.problems import Problem
from common.sms_text import SmsKind, measured
from gateway import alert_views, approvals, audiences, intake, preview, testsends
from gateway.deps import ApproverDep, OperatorDep, SessionDep, StateDep, ViewerDep
from gateway.fields import Filled
from gateway.preview import AlertPreview
from gateway.routes.responses import AUTH_ERRORS, INVALID, NOT_FOUND, problem_doc
from gateway.schemas import AlertPublic, AlertStatus

router = APIRouter(prefix="/v1/alerts", tags=["approval"])

DECISION_ERRORS = {
    **AUTH_ERRORS,
    403: problem_doc(
        "The caller is not an approver, lacks a signed-in request's CSRF token, or wrote "
        "the alert (with any of their keys or sessions)."
    ),
    **NOT_FOUND,
    409: problem_doc(
        "The alert is not waiting for approval (approved already, rejected, cancelled, sent), "
        "or its expiry passed while it waited: it is now `expired` and is not sent."
    ),
}


class Rejection(BaseModel):
    """Why an alert is rejected: the author reads it."""

    reason: Annotated[
        str,
        Field(min_length=1, max_length=approvals.MAX_REASON, description="What to change."),
        Filled,
    ]


@contextmanager
def _decision_problems() -> Iterator[None]:
    """A decision that cannot be taken, as the problem the API answers (DECISION_ERRORS)."""
    try:
        yield
    except approvals.ExpiredWaiting as exc:
        raise Problem(409, "Conflict", str(exc), alert_status="expired") from exc
    except approvals.NotPending as exc:
        raise Problem(409, "Conflict", str(exc), alert_status=exc.status) from exc
    except approvals.OwnAlert as exc:
        raise Problem(403, "Forbidden", str(exc)) from exc
    except intake.AlertNotFound as exc:
        raise Problem(404, "Not Found", str(exc)) from exc


@router.post(
    "/{alert_id}/approve",
    summary="Approve an alert someone else wrote: it is sent (or scheduled)",
    response_model=AlertPublic,
    responses={**DECISION_ERRORS, **INVALID},
)
async def approve_alert(
    alert_id: uuid.UUID, principal: ApproverDep, state: StateDep, session: SessionDep
) -> AlertPublic:
    """`queued` or `scheduled`, with its broadcast handed to the outbox in the same step."""
    with _decision_problems():
        await approvals.approve(session, alert_id, principal, datetime.now(UTC))
    state.wake_outbox()
    return await alert_views.load(session, alert_id)


@router.post(
    "/{alert_id}/reject",
    summary="Reject an alert someone else wrote, with a reason",
    response_model=AlertPublic,
    responses={**DECISION_ERRORS, **INVALID},
)
async def reject_alert(
    alert_id: uuid.UUID, rejection: Rejection, principal: ApproverDep, session: SessionDep
) -> AlertPublic:
    """`rejected`, with the reason in `status_reason`; it is never sent."""
    try:
        reason = approvals.check_reason(rejection.reason)
    except ValueError as exc:
        raise Problem(
            422, "Invalid rejection", str(exc), errors=[{"field": "reason", "message": str(exc)}]
        ) from exc
    with _decision_problems():
        await approvals.reject(session, alert_id, principal, reason, datetime.now(UTC))
    return await alert_views.load(session, alert_id)


@router.get(
    "/{alert_id}/preview",
    summary="A stored alert as its recipients will see it, its reach and duration",
    response_model=AlertPreview,
    responses={**AUTH_ERRORS, **NOT_FOUND, **INVALID},
)
async def preview_stored(
    alert_id: uuid.UUID, principal: ViewerDep, state: StateDep, session: SessionDep
) -> AlertPreview:
    """What an approver reviews: recipients by district today, the message as sent, its
    character counts, warnings and the estimated duration at the configured rate."""
    alert = await session.get(Alert, alert_id)
    if alert is None:
        raise Problem(404, "Not Found", f"Alert {alert_id} does not exist.")
    reach = await audiences.reach(session, Audience.model_validate(alert.audience))
    now = datetime.now(UTC)
    sms = None
    if alert.sms_kind and alert.sms_text:
        link_base = state.settings.public_base_url.rstrip("/") + "/r/"
        kind = cast(SmsKind, alert.sms_kind)
        message = measured(kind, alert.sms_subject or "", alert.sms_text, link_base)
        sms = preview.shown_sms(message, alert.fallback_codes or [])
    return preview.build(preview.Stored.of(alert), reach, state.settings, now, sms=sms)


class TestSendAccepted(BaseModel):
    """A test send on its way: an alert of its own, reaching the test recipients only."""

    id: uuid.UUID = Field(description="The test send's own alert id (follow it like any alert).")
    test_of: uuid.UUID
    status: AlertStatus
    recipients: int = Field(description="Active subscribers with the test tag.")
    status_url: str


@router.post(
    "/{alert_id}/test",
    status_code=202,
    summary="Send the alert to the test recipients only, also while it waits for approval",
    response_model=TestSendAccepted,
    responses={
        **AUTH_ERRORS,
        **NOT_FOUND,
        409: problem_doc("The alert is rejected, cancelled or expired, or is a test send."),
        422: problem_doc(
            "No active subscriber has the test tag, or more than a test send may reach."
        ),
    },
)
async def test_alert(
    alert_id: uuid.UUID, principal: OperatorDep, state: StateDep, session: SessionDep
) -> TestSendAccepted:
    """A test send: the same message, through the real provider path, to the testers."""
    try:
        sent = await testsends.send(session, alert_id, principal, state.settings, datetime.now(UTC))
    except intake.AlertNotFound as exc:
        raise Problem(404, "Not Found", str(exc)) from exc
    except testsends.NotTestable as exc:
        raise Problem(409, "Conflict", str(exc)) from exc
    except testsends.NoTesters as exc:
        raise Problem(422, "No test recipients", str(exc)) from exc
    state.wake_outbox()
    status_url = f"{state.settings.public_base_url.rstrip('/')}/v1/alerts/{sent.alert.id}"
    return TestSendAccepted(
        id=sent.alert.id,
        test_of=alert_id,
        status="queued",
        recipients=sent.recipients,
        status_url=status_url,
    )
