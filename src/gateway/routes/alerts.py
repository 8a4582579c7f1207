"""`/v1/alerts`: intake (JSON or CAP 1.2), preview, status, list, cancel, progress stream.

A create's or a preview's body is read and parsed at the edge by `routes.alert_intake`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, cast

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy import tuple_

from common.models import Alert
from common.problems import Problem
from gateway import (
    alert_views,
    approvals,
    audiences,
    audit,
    cursors,
    intake,
    pausing,
    preview,
)
from gateway.deps import OperatorDep, SessionDep, StateDep, ViewerDep
from gateway.preview import AlertPreview
from gateway.routes import alert_intake
from gateway.routes.responses import AUTH_ERRORS, INVALID, NOT_FOUND, problem_doc
from gateway.schemas import (
    TERMINAL_STATUSES,
    AlertAccepted,
    AlertPage,
    AlertPublic,
    AlertStatus,
)

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])


@router.post(
    "",
    status_code=202,
    summary="Accept an alert to broadcast (JSON or CAP 1.2)",
    response_model=AlertAccepted,
    response_description="Stored; it reaches the broadcaster through the outbox.",
    responses={
        200: {"model": AlertAccepted, "description": "A repeat of an accepted alert (same id)."},
        400: problem_doc("Malformed XML, or XML with DTDs or entities."),
        **AUTH_ERRORS,
        404: problem_doc("A CAP Cancel references no known alert."),
        409: problem_doc("Idempotency-Key reused with another request, or not cancellable."),
        413: problem_doc(f"The body is larger than {alert_intake.MAX_BODY_BYTES} bytes."),
        415: problem_doc("Neither application/json nor application/cap+xml."),
        422: problem_doc(
            "Refused, nothing stored; `errors` names each field: an invalid field, a JSON key "
            "given twice, a `send_at` too far in the past, a title or body of only invisible "
            "characters, an invalid CAP element, a district or tag no subscriber has "
            "(`known` lists the known ones), or an audience that reaches no active "
            "subscriber."
        ),
    },
    openapi_extra=alert_intake.INTAKE_BODY,
)
async def create_alert(
    request: Request,
    response: Response,
    principal: OperatorDep,
    state: StateDep,
    session: SessionDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            description="Makes a retry safe: the same key and body return the first alert.",
        ),
    ] = None,
) -> AlertAccepted:
    """202 with the new alert's id and status URL; 200 with the same id for a repeat."""
    media_type = alert_intake.media_type(request)
    body = await alert_intake.read_body(request)
    try:
        if media_type in alert_intake.JSON_TYPES:
            alert_create = alert_intake.parse_json(body, state)
            submitted = await intake.submit(
                session,
                alert_create,
                actor=audit.Actor.of(principal),
                approval=approvals.needed(principal, alert_create.category, state.settings),
                idempotency_key=idempotency_key,
                fallback=alert_intake.fallback_plan(alert_create, state),
            )
            source = "json"
        else:
            submitted = await alert_intake.submit_cap(
                session, state, body, principal, idempotency_key
            )
            source = "cap"
    except intake.IdempotencyConflict as exc:
        raise Problem(409, "Conflict", str(exc)) from exc
    except intake.NotCancellable as exc:
        raise Problem(409, "Conflict", str(exc)) from exc
    except intake.AlertNotFound as exc:
        raise Problem(404, "Not Found", str(exc)) from exc
    except audiences.AudienceRefused as exc:
        raise alert_intake.refused(exc) from exc
    alert = submitted.alert
    # a new alert, or a CAP Cancel's control record, waits in the outbox
    state.wake_outbox()
    if submitted.created:
        state.metrics.alerts_accepted.labels(alert.category, source).inc()
    else:
        response.status_code = 200
    status_url = f"{state.settings.public_base_url.rstrip('/')}/v1/alerts/{alert.id}"
    response.headers["Location"] = status_url
    return AlertAccepted(id=alert.id, status=cast(AlertStatus, alert.status), status_url=status_url)


@router.post(
    ":preview",
    summary="What an alert would do, without storing it",
    response_model=AlertPreview,
    response_description=(
        "Its recipients by district, the message as sent with its character counts against "
        "the dealer's limits, warnings, and the estimated duration. Nothing is stored."
    ),
    responses={
        400: problem_doc("Malformed XML, or XML with DTDs or entities."),
        **AUTH_ERRORS,
        413: problem_doc(f"The body is larger than {alert_intake.MAX_BODY_BYTES} bytes."),
        415: problem_doc("Neither application/json nor application/cap+xml."),
        422: problem_doc(
            "The same refusals as a create (an invalid field, a JSON key given twice, a "
            "`send_at` too far in the past, invisible text, an invalid CAP element, an unknown "
            "district or tag, an audience that reaches nobody), and a CAP Cancel, which has "
            "no message to preview."
        ),
    },
    openapi_extra=alert_intake.INTAKE_BODY,
)
async def preview_alert(
    request: Request, principal: OperatorDep, state: StateDep, session: SessionDep
) -> AlertPreview:
    """The body of a create, checked as a create checks it, answered with its preview."""
    media_type = alert_intake.media_type(request)
    body = await alert_intake.read_body(request)
    hold: str | None = None
    if media_type in alert_intake.JSON_TYPES:
        alert = alert_intake.parse_json(body, state)
    else:
        parsed = alert_intake.parse_cap(body, state)
        if parsed.request is None:
            detail = "A CAP Cancel has no message to preview."
            errors = [{"field": "msgType", "message": detail}]
            raise Problem(422, "Invalid CAP alert", detail, errors=errors)
        alert, hold = parsed.request, parsed.hold
    audience = alert.audience.to_message()
    try:
        async with session.begin():
            await audiences.check(session, audience)
            reach = await audiences.reach(session, audience)
    except audiences.AudienceRefused as exc:
        raise alert_intake.refused(exc) from exc
    planned = alert_intake.fallback_plan(alert, state)
    sms = preview.shown_sms(planned.message, planned.codes) if planned else None
    return preview.build(alert, reach, state.settings, datetime.now(UTC), hold=hold, sms=sms)


@router.get(
    "",
    summary="List alerts, newest first",
    response_model=AlertPage,
    responses={**AUTH_ERRORS, **INVALID},
)
async def list_alerts(
    principal: ViewerDep,
    state: StateDep,
    session: SessionDep,
    limit: Annotated[int | None, Query(ge=1, le=1000, description="Alerts per page.")] = None,
    cursor: Annotated[
        str | None,
        Query(pattern=cursors.ALERTS_PATTERN, description="`next_cursor` of the previous page."),
    ] = None,
    status: Annotated[AlertStatus | None, Query(description="Only alerts in this status.")] = None,
    test_of: Annotated[
        uuid.UUID | None,
        Query(description="Only the test sends of this alert (otherwise test sends are left out)."),
    ] = None,
    parent_id: Annotated[
        uuid.UUID | None,
        Query(description="Only the follow-ups (resends, corrections, updates) of this alert."),
    ] = None,
) -> AlertPage:
    """One page of alerts; keyset pagination on (created_at, id)."""
    size = limit or state.settings.gateway_page_limit
    query = (
        alert_views.with_stats()
        .order_by(Alert.created_at.desc(), Alert.id.desc())
        .limit(size + 1)
        .where(Alert.test_of == test_of if test_of is not None else Alert.test_of.is_(None))
    )
    if parent_id is not None:
        query = query.where(Alert.parent_id == parent_id)
    if status == "paused":
        query = query.where(Alert.paused_at.is_not(None), Alert.status.in_(pausing.RUNNING))
    elif status in pausing.RUNNING:
        query = query.where(Alert.status == status, Alert.paused_at.is_(None))
    elif status is not None:
        query = query.where(Alert.status == status)
    if cursor is not None:
        created_at, alert_id = cursors.decode_alerts(cursor)
        query = query.where(tuple_(Alert.created_at, Alert.id) < tuple_(created_at, alert_id))
    rows = (await session.execute(query)).all()
    items = [alert_views.public(*row) for row in rows[:size]]
    next_cursor = (
        cursors.encode_alerts(items[-1].created_at, items[-1].id) if len(rows) > size else None
    )
    return AlertPage(items=items, next_cursor=next_cursor)


@router.get(
    "/{alert_id}",
    summary="An alert's status, counters and read rate",
    response_model=AlertPublic,
    responses={**AUTH_ERRORS, **NOT_FOUND, **INVALID},
)
async def get_alert(alert_id: uuid.UUID, principal: ViewerDep, session: SessionDep) -> AlertPublic:
    """The alert with its progress (the broadcaster's) and read rate (analytics' counts)."""
    return await alert_views.load(session, alert_id)


@router.post(
    "/{alert_id}/cancel",
    summary="Cancel an alert, also while it is being sent",
    response_model=AlertPublic,
    responses={
        **AUTH_ERRORS,
        **NOT_FOUND,
        409: problem_doc(
            "The alert is completed, failed, rejected, expired, or was never broadcast."
        ),
        **INVALID,
    },
)
async def cancel_alert(
    alert_id: uuid.UUID, principal: OperatorDep, state: StateDep, session: SessionDep
) -> AlertPublic:
    """Status `cancelled` and, unless it still waited for approval, a cancel command on
    `alerts.control`; repeating it is harmless."""
    try:
        await intake.cancel(session, alert_id, actor=audit.Actor.of(principal))
    except intake.AlertNotFound as exc:
        raise Problem(404, "Not Found", str(exc)) from exc
    except intake.NotCancellable as exc:
        raise Problem(409, "Conflict", str(exc)) from exc
    state.wake_outbox()
    return await alert_views.load(session, alert_id)


async def _existing(alert_id: uuid.UUID, state: StateDep) -> AlertPublic:
    # loaded before the stream starts, so an unknown id is a plain 404
    async with state.sessions() as session:
        return await alert_views.load(session, alert_id)


@router.get(
    "/{alert_id}/events",
    summary="Progress as server-sent events, until the broadcast ends",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": (
                "`event: progress` with an AlertPublic each time it changes; the last event "
                "is `event: end` once the status is completed, cancelled, failed, "
                "not_broadcast, rejected or expired."
            ),
            "content": {
                "text/event-stream": {
                    # OpenAPI 3.1 has no `itemSchema`: a stream's `schema` describes each event
                    "schema": {
                        "type": "object",
                        "description": "One event of the stream.",
                        "properties": {
                            "event": {"type": "string", "enum": ["progress", "end"]},
                            "id": {"type": "string", "description": "1, 2, ... as sent."},
                            "data": {
                                "type": "string",
                                "contentMediaType": "application/json",
                                "contentSchema": {"$ref": "#/components/schemas/AlertPublic"},
                            },
                        },
                        "required": ["event", "id", "data"],
                    }
                }
            },
        },
        **AUTH_ERRORS,
        **NOT_FOUND,
        **INVALID,
    },
)
async def alert_events(
    alert_id: uuid.UUID,
    principal: ViewerDep,
    state: StateDep,
    request: Request,
    current: Annotated[AlertPublic, Depends(_existing)],
) -> AsyncIterator[ServerSentEvent]:
    """Re-read the alert every `gateway_sse_poll_seconds` and send it when it changed, with
    its send rate over the last `alert_views.RATE_WINDOW` seconds and the estimate from it."""
    seq = 0
    window = alert_views.RateWindow()
    while True:
        seq += 1
        ended = current.status in TERMINAL_STATUSES
        yield ServerSentEvent(event="end" if ended else "progress", id=str(seq), data=current)
        if ended:
            return
        previous = current
        while alert_views.progress_of(current) == alert_views.progress_of(previous):
            await asyncio.sleep(state.settings.gateway_sse_poll_seconds)
            if await request.is_disconnected():
                return
            async with state.sessions() as session:
                current = window.paced(await alert_views.load(session, alert_id))
