"""`/v1/alerts/{id}/recipients`: who got an alert, one recipient at a time, as pages, or as
one streamed CSV (`Accept: text/csv`, or `format=csv` for a link, which sets no header)."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Literal, cast

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.models import Alert, Subscriber
from common.problems import Problem
from gateway import cursors, recipients, subscribers
from gateway.deps import SessionDep, StateDep, ViewerDep
from gateway.recipients import Listed, Outcome, RecipientOutcome
from gateway.routes.responses import AUTH_ERRORS, INVALID, problem_doc

router = APIRouter(prefix="/v1/alerts", tags=["recipients"])

CSV = "text/csv"
CSV_COLUMNS = ("recipient_no", "outcome", "code", "reason", "at", "batch_id", "channel")
PAGE_LIMIT = 1000


class RecipientPublic(BaseModel):
    """One recipient's outcome in one alert."""

    recipient_no: str
    outcome: Outcome = Field(
        description="`delivered`, `failed` (the dealer's code and message), `pending`, or "
        "`not_sent` (`reason` says why: opted out or left the audience, joined later, "
        "cancelled, expired)."
    )
    code: int | None = Field(description="The dealer's result code, when it answered.")
    reason: str | None = Field(description="The dealer's message, or why it was not sent.")
    at: datetime | None = Field(description="When it was delivered, or failed.")
    batch_id: str | None = Field(description="The batch (provider request) that carried it.")
    channel: Literal["kakao", "sms"] | None = Field(
        description="The channel of that batch: KakaoTalk, or the SMS/LMS fallback."
    )

    @classmethod
    def of(cls, found: RecipientOutcome) -> RecipientPublic:
        """The API's view of an outcome."""
        return cls(
            recipient_no=found.recipient_no,
            outcome=found.outcome,
            code=found.code,
            reason=found.reason,
            at=found.at,
            batch_id=found.batch_id,
            channel=cast(Literal["kakao", "sms"] | None, found.channel),
        )


class RecipientPage(BaseModel):
    """One page of recipients by subscriber; pass `next_cursor` as `cursor` for the next."""

    items: list[RecipientPublic]
    next_cursor: str | None


async def _alert(session: SessionDep, alert_id: uuid.UUID) -> Alert:
    alert = await session.get(Alert, alert_id)
    if alert is None:
        raise Problem(404, "Not Found", f"Alert {alert_id} does not exist.")
    return alert


@router.get(
    "/{alert_id}/recipients/{recipient_no}",
    summary="Did this recipient get the alert, and when (or why not)",
    response_model=RecipientPublic,
    responses={
        **AUTH_ERRORS,
        404: problem_doc(
            "No alert has this id, no subscriber has this number, or the subscriber was "
            "never in the alert's audience."
        ),
        **INVALID,
    },
)
async def recipient(
    alert_id: uuid.UUID,
    recipient_no: Annotated[
        str,
        Path(
            pattern=subscribers.RECIPIENT_PATTERN,
            description=f"The recipient number: {subscribers.RECIPIENT_RULE}.",
        ),
    ],
    principal: ViewerDep,
    session: SessionDep,
) -> RecipientPublic:
    """Delivered (when), failed (the dealer's code and message), pending, or not sent (why)."""
    alert = await _alert(session, alert_id)
    subscriber = await session.scalar(
        select(Subscriber).where(Subscriber.recipient_no == recipient_no)
    )
    if subscriber is None:
        raise Problem(404, "Not Found", f"No subscriber has the number {recipient_no}.")
    found = await recipients.look_up(session, alert, subscriber)
    if found is None:
        raise Problem(
            404, "Not Found", f"{recipient_no} was never in the audience of alert {alert_id}."
        )
    return RecipientPublic.of(found)


# a code as `batches.result_codes` holds it (PostgreSQL integer): a larger one was a 500
DealerCode = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]


@router.get(
    "/{alert_id}/recipients",
    summary="The alert's delivered or failed recipients, as pages or one CSV",
    response_model=RecipientPage,
    responses={
        200: {
            "description": "A page as JSON, or with `Accept: text/csv` (or `format=csv`) every "
            f"matching recipient as one streamed CSV (columns {', '.join(CSV_COLUMNS)}).",
            "content": {CSV: {"schema": {"type": "string"}}},
        },
        **AUTH_ERRORS,
        404: problem_doc("No alert has this id."),
        **INVALID,
    },
)
async def recipient_list(
    alert_id: uuid.UUID,
    request: Request,
    principal: ViewerDep,
    state: StateDep,
    session: SessionDep,
    outcome: Annotated[Listed, Query(description="`failed` or `delivered`.")] = "failed",
    code: Annotated[
        list[DealerCode] | None,
        Query(description="Only failures with one of these dealer codes (repeat it)."),
    ] = None,
    cursor: Annotated[
        str | None,
        Query(pattern=cursors.RECIPIENTS_PATTERN, description="`next_cursor` of the last page."),
    ] = None,
    limit: Annotated[
        int | None, Query(ge=1, le=PAGE_LIMIT, description="Recipients per page.")
    ] = None,
    as_format: Annotated[
        Literal["json", "csv"] | None,
        Query(
            alias="format",
            description="`csv` answers the CSV as `Accept: text/csv` does (a link sets no "
            "header); `json` a page whatever `Accept` says.",
        ),
    ] = None,
) -> RecipientPage | Response:
    """Keyset pages by subscriber, or (Accept: text/csv, format=csv) one CSV of any size."""
    await _alert(session, alert_id)
    if code and outcome != "failed":
        detail = "`code` filters failures: use it with outcome=failed."
        raise Problem(422, "Invalid request", detail, errors=[{"field": "code", "message": detail}])
    if as_format == "csv" or (as_format is None and CSV in request.headers.get("accept", "")):
        filename = f"{alert_id}-{outcome}.csv"
        return StreamingResponse(
            _csv(state.sessions, alert_id, outcome, code),
            media_type=f"{CSV}; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    after = cursors.decode_recipients(cursor) if cursor is not None else 0
    size = limit or state.settings.gateway_page_limit
    found, last = await recipients.page(session, alert_id, outcome, code, after, size)
    return RecipientPage(
        items=[RecipientPublic.of(r) for r in found],
        next_cursor=cursors.encode_recipients(last) if last is not None else None,
    )


async def _csv(
    sessions: async_sessionmaker[AsyncSession],
    alert_id: uuid.UUID,
    outcome: Listed,
    codes: list[int] | None,
) -> AsyncIterator[bytes]:
    # its own session: the request's closes when the route returns, before the stream ends
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    async with sessions() as session:
        rows = 0
        async for found in recipients.stream(session, alert_id, outcome, codes):
            at = found.at.isoformat() if found.at else ""
            writer.writerow(
                (
                    found.recipient_no,
                    found.outcome,
                    found.code,
                    found.reason or "",
                    at,
                    found.batch_id,
                    found.channel or "",
                )
            )
            rows += 1
            if rows % 2_000 == 0:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue().encode()
