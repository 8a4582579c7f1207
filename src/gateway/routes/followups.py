"""`POST /v1/alerts/{id}/resend` and `/followup`: send again to those an alert failed, or
correct it for those it reached. Each creates a linked alert with a frozen audience."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Header, Response
from pydantic import Field, StrictBool

from common.problems import Problem
from gateway import approvals, audit, followups, intake
from gateway.deps import OperatorDep, SessionDep, StateDep
from gateway.fields import JsonInteger, Strict
from gateway.followups import FollowUpAudience, ResendOutcome
from gateway.routes.responses import AUTH_ERRORS, INVALID, NOT_FOUND, problem_doc
from gateway.schemas import AlertStatus, Title
from gateway.schemas import Body as BodyText

router = APIRouter(prefix="/v1/alerts", tags=["follow-ups"])

DEFAULT_OUTCOMES: tuple[ResendOutcome, ...] = ("failed",)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Makes a retry safe: the same key and body return the first follow-up.",
    ),
]


class ResendCreate(Strict):
    """Whom to send the alert again: the parent's recipients with these outcomes."""

    outcomes: list[ResendOutcome] = Field(
        default_factory=lambda: list(DEFAULT_OUTCOMES),
        min_length=1,
        description="`failed` (with `codes`), and/or `not_sent` (the audience no batch "
        "carried: a cancel or an expiry stopped it first; the parent must have ended).",
    )
    codes: list[Annotated[int, Field(ge=0, le=99_999), JsonInteger]] | None = Field(
        None,
        max_length=100,
        description="The dealer codes of the failures to resend; by default every code but "
        "3018, 3019 and 3020, which no second attempt changes.",
    )


class FollowUpCreate(Strict):
    """A correction or an update of an alert that has ended."""

    # not `resend`: that is POST /resend, and the schema says so as the route does
    kind: Literal["correction", "update"] = Field(
        description="`correction` or `update` (a resend is `POST /v1/alerts/{id}/resend`)."
    )
    title: Title
    body: BodyText
    audience: FollowUpAudience = Field(
        "delivered",
        description="`delivered`: everyone the parent reached; `readers`: those who opened it.",
    )
    mark: StrictBool = Field(
        True, description="Start a correction's title with `[정정]` (an update's `[추가 안내]`)."
    )


class FollowUpAccepted(Strict):
    """A follow-up on its way: an alert of its own with its audience frozen."""

    id: uuid.UUID
    parent_id: uuid.UUID
    relation: followups.Relation
    status: AlertStatus = Field(description="`pending_approval` or `queued`, as any alert.")
    recipients: int = Field(description="Subscribers in the frozen audience.")
    status_url: str


FOLLOW_UP_ERRORS = {
    **AUTH_ERRORS,
    **NOT_FOUND,
    409: problem_doc(
        "The parent cannot be followed up now (still sending, waiting for approval, a test "
        "send), or the Idempotency-Key was used for another request."
    ),
    422: problem_doc(
        "A field is invalid, or the chosen recipients are nobody (nothing is created)."
    ),
}


async def _create(
    alert_id: uuid.UUID,
    draft: followups.Draft,
    principal: OperatorDep,
    state: StateDep,
    session: SessionDep,
    response: Response,
    idempotency_key: str | None,
) -> FollowUpAccepted:
    try:
        made = await followups.create(
            session,
            alert_id,
            draft,
            actor=audit.Actor.of(principal),
            approval=lambda category: approvals.needed(principal, category, state.settings),
            now=datetime.now(UTC),
            idempotency_key=idempotency_key,
        )
    except intake.AlertNotFound as exc:
        raise Problem(404, "Not Found", str(exc)) from exc
    except followups.NotFollowable as exc:
        raise Problem(409, "Conflict", str(exc), alert_status=exc.status) from exc
    except intake.IdempotencyConflict as exc:
        raise Problem(409, "Conflict", str(exc)) from exc
    except followups.NobodyToReach as exc:
        raise Problem(
            422, "Nobody to reach", str(exc), errors=[{"field": "body", "message": str(exc)}]
        ) from exc
    state.wake_outbox()
    response.status_code = 202 if made.created else 200
    child = made.alert
    return FollowUpAccepted(
        id=child.id,
        parent_id=alert_id,
        relation=draft.relation,
        status="pending_approval" if child.status == "pending_approval" else "queued",
        recipients=made.recipients,
        status_url=f"{state.settings.public_base_url.rstrip('/')}/v1/alerts/{child.id}",
    )


@router.post(
    "/{alert_id}/resend",
    status_code=202,
    summary="Send the alert again to those it failed (or did not reach), as a linked alert",
    response_model=FollowUpAccepted,
    responses={
        200: {"model": FollowUpAccepted, "description": "A repeat (same Idempotency-Key)."},
        **FOLLOW_UP_ERRORS,
        **INVALID,
    },
)
async def resend(
    alert_id: uuid.UUID,
    principal: OperatorDep,
    state: StateDep,
    session: SessionDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
    chosen: Annotated[ResendCreate | None, Body()] = None,
) -> FollowUpAccepted:
    """A child alert to exactly the chosen recipients, frozen now; approved like any alert."""
    asked = chosen or ResendCreate()
    draft = followups.Draft(
        "resend",
        outcomes=tuple(sorted(set(asked.outcomes))),
        codes=followups.as_codes(asked.codes),
    )
    return await _create(alert_id, draft, principal, state, session, response, idempotency_key)


@router.post(
    "/{alert_id}/followup",
    status_code=202,
    summary="Correct or update an alert for those it reached or who read it",
    response_model=FollowUpAccepted,
    responses={
        200: {"model": FollowUpAccepted, "description": "A repeat (same Idempotency-Key)."},
        **FOLLOW_UP_ERRORS,
        **INVALID,
    },
)
async def followup(
    alert_id: uuid.UUID,
    asked: FollowUpCreate,
    principal: OperatorDep,
    state: StateDep,
    session: SessionDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> FollowUpAccepted:
    """A child alert with the new title and body, to the parent's delivered or readers."""
    title = followups.titled(asked.kind, asked.title, asked.mark)
    if len(title) > 50:
        detail = f"With its mark the title has {len(title)} characters; at most 50 are sent."
        raise Problem(
            422, "Invalid request", detail, errors=[{"field": "title", "message": detail}]
        )
    draft = followups.Draft(asked.kind, title=title, body=asked.body, audience=asked.audience)
    return await _create(alert_id, draft, principal, state, session, response, idempotency_key)
