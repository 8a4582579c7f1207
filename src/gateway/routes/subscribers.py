"""Subscriber routes: upsert, opt-out, look-up, counts by district, and bulk import."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.convertors import StringConvertor, register_url_convertor
from starlette.requests import ClientDisconnect

from common.db import asyncpg_dsn
from common.models import Subscriber
from common.problems import Problem
from gateway import audit, subscribers
from gateway.deps import OperatorDep, SessionDep, StateDep, ViewerDep
from gateway.fields import STORABLE_PATTERN
from gateway.importer import (
    FORMATS,
    MAX_ERRORS,
    MAX_LINE_BYTES,
    ImportRefused,
    UnsupportedFormat,
    format_of,
    import_subscribers,
)
from gateway.routes.responses import Responses, problem_doc

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["subscribers"])


class _RecipientConvertor(StringConvertor):
    """A path segment that may be a recipient number: anything but `counts`, the sibling
    resource, so `PUT /v1/subscribers/counts` is a 405 rather than a malformed number."""

    regex = "(?!counts$)[^/]+"


register_url_convertor("recipient", _RecipientConvertor())

Recipient = Annotated[
    str,
    Path(
        pattern=subscribers.RECIPIENT_PATTERN,
        description=f"The recipient number: {subscribers.RECIPIENT_RULE}.",
        examples=["01012345678"],
    ),
]


class SubscriberUpsert(BaseModel):
    """The body of a PUT: where the subscriber lives and what they asked to hear about."""

    model_config = ConfigDict(extra="forbid")

    # the limits `subscribers` checks (after trimming) in the schema too, and no NUL, which
    # PostgreSQL cannot store: a client generated from the document refuses what the
    # gateway would
    district: str | None = Field(
        None,
        description="District name (at most 64 characters); blank means none.",
        json_schema_extra={"maxLength": subscribers.DISTRICT_MAX, "pattern": STORABLE_PATTERN},
    )
    tags: list[str] = Field(
        default_factory=list,
        description="Interests, at most 32 of 64 characters each.",
        json_schema_extra={
            "items": {
                "type": "string",
                "maxLength": subscribers.TAG_MAX,
                "pattern": STORABLE_PATTERN,
            }
        },
    )

    @field_validator("district")
    @classmethod
    def _district(cls, value: str | None) -> str | None:
        return subscribers.check_district(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return subscribers.check_tags(value)


class SubscriberPublic(BaseModel):
    """A subscriber as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    recipient_no: str
    district: str | None
    tags: list[str]
    status: str = Field(description="`active` or `opted_out`.")
    created_at: datetime
    updated_at: datetime
    opted_out_at: datetime | None


class DistrictCountPublic(BaseModel):
    """Subscribers of one district; `district` is null for those without one."""

    district: str | None
    active: int
    opted_out: int


class SubscriberCounts(BaseModel):
    """Subscribers in all and by district."""

    active: int
    opted_out: int
    districts: list[DistrictCountPublic]


class RowErrorPublic(BaseModel):
    """A rejected line of an import."""

    model_config = ConfigDict(from_attributes=True)

    line: int
    reason: str


class ImportReportPublic(BaseModel):
    """What an import did. `errors` lists the first rejections by line; `rejected` counts all."""

    model_config = ConfigDict(from_attributes=True)

    accepted: int = Field(description="Rows upserted: created + updated + unchanged.")
    rejected: int
    created: int
    updated: int
    unchanged: int
    opted_out: int = Field(description="Accepted rows of subscribers who opted out and stay so.")
    errors: list[RowErrorPublic] = Field(description=f"At most {MAX_ERRORS}, by line.")


def _found(subscriber: Subscriber | None, recipient: str) -> Subscriber:
    if subscriber is None:
        raise Problem(404, "Not Found", f"No subscriber has the recipient number '{recipient}'.")
    return subscriber


@router.get("/subscribers/counts", summary="Subscribers by district and status")
async def counts(session: SessionDep, _: ViewerDep) -> SubscriberCounts:
    """Active and opted-out subscribers, in all and per district."""
    rows = await subscribers.counts_by_district(session)
    return SubscriberCounts(
        active=sum(r.active for r in rows),
        opted_out=sum(r.opted_out for r in rows),
        districts=[DistrictCountPublic(**vars(r)) for r in rows],
    )


@router.put(
    "/subscribers/{recipient:recipient}",
    summary="Create or update a subscriber",
    responses={201: {"model": SubscriberPublic, "description": "Created"}},
)
async def put_subscriber(
    recipient: Recipient,
    body: SubscriberUpsert,
    session: SessionDep,
    response: Response,
    _: OperatorDep,
) -> SubscriberPublic:
    """Upsert one subscriber (201 when new, 200 when updated); lifts an earlier opt-out."""
    upserted = await subscribers.upsert(session, recipient, body.district, body.tags)
    await session.commit()
    response.status_code = status.HTTP_201_CREATED if upserted.created else status.HTTP_200_OK
    return SubscriberPublic.model_validate(upserted.subscriber)


NO_SUBSCRIBER: Responses = {404: problem_doc("No subscriber has this recipient number.")}


@router.delete(
    "/subscribers/{recipient:recipient}", summary="Opt a subscriber out", responses=NO_SUBSCRIBER
)
async def delete_subscriber(
    recipient: Recipient, session: SessionDep, principal: OperatorDep
) -> SubscriberPublic:
    """Opt out: no further batch includes them, also of broadcasts already running."""
    subscriber = _found(await subscribers.opt_out(session, recipient), recipient)
    audit.record(
        session,
        audit.Actor.of(principal),
        "subscriber.opt_out",
        detail={"subscriber_id": subscriber.id, "recipient_no": recipient},
    )
    await session.commit()
    logger.info("subscriber opted out", extra={"subscriber_id": subscriber.id})
    return SubscriberPublic.model_validate(subscriber)


@router.get("/subscribers/{recipient:recipient}", summary="One subscriber", responses=NO_SUBSCRIBER)
async def get_subscriber(
    recipient: Recipient, session: SessionDep, _: ViewerDep
) -> SubscriberPublic:
    """The subscriber with this recipient number; 404 when there is none."""
    subscriber = _found(await subscribers.find(session, recipient), recipient)
    return SubscriberPublic.model_validate(subscriber)


_IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            "CSV with a header `recipient_no,district,tags` (tags separated by `;`), or "
            'NDJSON lines `{"recipient_no": "...", "district": "...", "tags": [...]}`.'
        ),
        "content": {media: {"schema": {"type": "string"}} for media in FORMATS},
    }
}


@router.post(
    "/subscribers:import",
    summary="Import subscribers from a CSV or NDJSON file",
    openapi_extra=_IMPORT_BODY,
    responses={
        400: problem_doc(
            "Refused as a whole, nothing changed: the CSV header line does not name "
            "recipient_no (and optionally district and tags, each once), is longer than "
            f"{MAX_LINE_BYTES} bytes or is not UTF-8; or the body ended early."
        ),
        415: problem_doc("Neither CSV nor NDJSON."),
    },
)
async def import_file(
    request: Request, state: StateDep, principal: OperatorDep
) -> ImportReportPublic:
    """Stream the body into `subscribers`; bad lines are rejected by number, the rest kept."""
    try:
        fmt = format_of(request.headers.get("content-type"))
    except UnsupportedFormat as exc:
        raise Problem(415, "Unsupported Media Type", str(exc)) from exc
    try:
        report = await import_subscribers(
            asyncpg_dsn(state.settings.database_url),
            request.stream(),
            fmt,
            audit.Actor.of(principal),
        )
    except ImportRefused as exc:
        raise Problem(400, "Import refused", str(exc)) from exc
    except ClientDisconnect as exc:
        logger.info("import abandoned: the client went away before the end; nothing changed")
        raise Problem(400, "Import abandoned", "The body ended early; nothing changed.") from exc
    logger.info(
        "import: %s accepted (%s created, %s updated), %s rejected",
        report.accepted,
        report.created,
        report.updated,
        report.rejected,
    )
    return ImportReportPublic.model_validate(report)
