"""`GET /v1/audit`: the audit log, newest first, filtered by alert, actor or action.

Approvers and admins read it: approvers answer for what was sent, admins for who may do
what. Viewers and operators get 403.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from gateway import audit, cursors
from gateway.deps import AuditorDep, SessionDep, StateDep
from gateway.fields import Storable

# a filter PostgreSQL can compare: no NUL (asyncpg refuses it, which would be a 500)
StorableStr = Annotated[str, Storable]

router = APIRouter(prefix="/v1/audit", tags=["audit"])


class AuditEntryPublic(BaseModel):
    """One recorded action."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str = Field(
        description="Who: the user's name, `cli:<system user>` for a server command, or `allim`."
    )
    user_id: int | None = Field(description="The named user, when a user did it.")
    key_id: int | None = Field(description="The API key used, when one was.")
    action: str = Field(description="`alert.create`, `alert.cancel`, `key.create`, ...")
    alert_id: uuid.UUID | None
    detail: dict[str, Any]


class AuditPage(BaseModel):
    """One page of the audit log, newest first; pass `next_cursor` as `cursor` for the next."""

    items: list[AuditEntryPublic]
    next_cursor: str | None


@router.get(
    "",
    summary="The audit log: who did what, newest first",
    response_model=AuditPage,
    responses={422: {"description": "A query parameter is invalid."}},
)
async def list_audit(
    _: AuditorDep,
    state: StateDep,
    session: SessionDep,
    alert_id: Annotated[uuid.UUID | None, Query(description="Only this alert's rows.")] = None,
    actor: Annotated[
        StorableStr | None,
        Query(max_length=100, description="Only this actor's rows (exact name)."),
    ] = None,
    action: Annotated[
        StorableStr | None,
        Query(max_length=64, description="Only this action, as `alert.cancel`."),
    ] = None,
    limit: Annotated[int | None, Query(ge=1, le=1000, description="Rows per page.")] = None,
    cursor: Annotated[
        str | None,
        Query(pattern=cursors.AUDIT_PATTERN, description="`next_cursor` of the previous page."),
    ] = None,
) -> AuditPage:
    """One page of audit rows; keyset pagination on the row id."""
    rows = await audit.page(
        session,
        audit.AuditFilter(alert_id=alert_id, actor=actor, action=action),
        before=cursors.decode_audit(cursor) if cursor is not None else None,
        limit=limit or state.settings.gateway_page_limit,
    )
    return AuditPage(
        items=[AuditEntryPublic.model_validate(entry) for entry in rows.entries],
        next_cursor=(
            cursors.encode_audit(rows.next_before) if rows.next_before is not None else None
        ),
    )
