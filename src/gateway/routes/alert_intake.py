"""An alert request's body at the edge of intake: read within its size limit, parsed as
JSON or CAP 1.2, and a CAP document's new alert, cancel or update submitted, each refusal
answered as its problem. `routes.alerts` takes creates and previews through it.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from common.kakao_limits import MAX_TITLE
from common.problems import Problem
from common.sms_text import SmsTextError
from gateway import approvals, audiences, audit, cap, fallback, followups, intake
from gateway.auth import Principal
from gateway.jsonkeys import repeated_keys
from gateway.schemas import SEND_AT_FLOOR, AlertCreate
from gateway.state import GatewayState

MAX_BODY_BYTES = 256 * 1024
JSON_TYPES = frozenset({"application/json"})
CAP_TYPES = frozenset({"application/cap+xml", "application/xml", "text/xml"})


INTAKE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/AlertCreate"}},
            "application/cap+xml": {
                "schema": {"type": "string", "description": "An OASIS CAP 1.2 <alert>."}
            },
        },
    }
}


def media_type(request: Request) -> str:
    """The body's media type, JSON or CAP; a 415 for any other."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in JSON_TYPES | CAP_TYPES:
        raise Problem(
            415,
            "Unsupported Media Type",
            f"Content-Type '{media_type}' is not application/json or application/cap+xml.",
        )
    return media_type


def refused(exc: audiences.AudienceRefused) -> Problem:
    """The 422 of an audience that names nobody known or reaches nobody."""
    extra: dict[str, Any] = {"known": exc.known} if exc.known else {}
    return Problem(422, "Invalid audience", exc.detail, errors=exc.errors, **extra)


async def read_body(request: Request) -> bytes:
    """The whole body; a 413 as soon as it passes `MAX_BODY_BYTES`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > MAX_BODY_BYTES:
            raise _too_large()
    return bytes(chunks)


def _too_large() -> Problem:
    return Problem(413, "Content Too Large", f"The body is larger than {MAX_BODY_BYTES} bytes.")


def parse_json(body: bytes, state: GatewayState) -> AlertCreate:
    """A JSON body as an alert; the 422 of FastAPI's own validation when it is not one."""
    repeated = repeated_keys(body)
    if repeated:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("body", *where),
                    "msg": f"The key '{where[-1]}' is given more than once.",
                    "input": None,
                }
                for where in repeated
            ]
        )
    max_past = timedelta(minutes=state.settings.gateway_send_at_max_past_minutes)
    try:
        return AlertCreate.model_validate_json(
            body, context={SEND_AT_FLOOR: datetime.now(UTC) - max_past}
        )
    except ValidationError as exc:
        # the same 422 problem as FastAPI's own body validation, naming each field
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from exc


async def submit_cap(
    session: AsyncSession,
    state: GatewayState,
    body: bytes,
    principal: Principal,
    idempotency_key: str | None,
) -> intake.Submitted:
    """What a CAP document asks: a new alert, a cancel, or a known alert's update."""
    parsed = parse_cap(body, state)
    actor = audit.Actor.of(principal)
    if parsed.request is None:
        cancelled = await intake.cancel_cap(session, parsed.references, actor=actor)
        return intake.Submitted(cancelled[0], created=False)
    follows: tuple[uuid.UUID, str] | None = None
    if parsed.msg_type == "Update" and parsed.hold is None:
        # an Update of a known alert is its follow-up: to those it reached once it has
        # ended, or linked to it as an update while it is still under way
        parent = await _referenced(session, parsed.references)
        if parent is not None and parent[1] in followups.ENDED:
            return await _cap_follow_up(
                session, state, parsed, parent[0], principal, idempotency_key
            )
        follows = (parent[0], "update") if parent is not None else None
    return await intake.submit(
        session,
        parsed.request,
        actor=actor,
        approval=approvals.needed(principal, parsed.request.category, state.settings),
        idempotency_key=idempotency_key,
        origin=parsed.origin,
        hold=parsed.hold,
        follows=follows,
        fallback=fallback_plan(parsed.request, state),
    )


def fallback_plan(alert: AlertCreate, state: GatewayState) -> fallback.FallbackPlan | None:
    """The alert's SMS/LMS fallback; a 422 when its text cannot go as it asks."""
    try:
        return fallback.plan(alert, state.settings)
    except SmsTextError as exc:
        raise Problem(422, "Invalid SMS text", str(exc), errors=fallback.refusal(exc)) from exc


async def _referenced(
    session: AsyncSession, references: tuple[intake.CapOrigin, ...]
) -> tuple[uuid.UUID, str] | None:
    """(id, status) of the first referenced alert allim holds, if any."""
    async with session.begin():
        for origin in references:
            alert = await intake.find_cap(session, origin)
            if alert is not None:
                return alert.id, alert.status
    return None


async def _cap_follow_up(
    session: AsyncSession,
    state: GatewayState,
    parsed: cap.CapAlert,
    parent_id: uuid.UUID,
    principal: Principal,
    idempotency_key: str | None,
) -> intake.Submitted:
    request = parsed.request
    assert request is not None
    marked = followups.titled("update", request.title, True)
    origin = parsed.origin
    made = await followups.create(
        session,
        parent_id,
        followups.Draft(
            "update",
            title=marked if len(marked) <= MAX_TITLE else request.title,
            body=request.body,
            audience="delivered",
        ),
        actor=audit.Actor.of(principal),
        approval=lambda category: approvals.needed(principal, category, state.settings),
        now=datetime.now(UTC),
        # a relayed copy of the same CAP Update is the same follow-up
        idempotency_key=idempotency_key
        or "cap:"
        + hashlib.sha256(
            f"{origin.sender}\0{origin.identifier}\0{origin.sent}".encode()
        ).hexdigest(),
    )
    return intake.Submitted(made.alert, made.created)


def parse_cap(body: bytes, state: GatewayState) -> cap.CapAlert:
    """A CAP 1.2 document read; a 400 when unsafe, a 422 naming the element when invalid."""
    try:
        return cap.parse(body, state.cap_areas, datetime.now(UTC))
    except cap.CapUnsafe as exc:
        raise Problem(400, "Bad Request", str(exc)) from exc
    except cap.CapInvalid as exc:
        raise Problem(422, "Invalid CAP alert", str(exc), errors=exc.errors) from exc
