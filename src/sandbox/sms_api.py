"""The SMS and LMS provider contract (docs/provider-api.md, "SMS and LMS"): send a batch
as SMS or LMS, look results up by `senderGroupingKey`."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request, Response

from sandbox.api import (
    JSON,
    answer_send,
    bad_request,
    header,
    lookup_query,
    unauthorized,
)
from sandbox.dealer import ALREADY_ACCEPTED
from sandbox.errors import InvalidRequest
from sandbox.sms_dealer import SmsDealer
from sandbox.sms_validation import SmsKind, parse_sms_request

router = APIRouter(prefix="/sms/v3.0/appKeys/{appkey}/sender", tags=["provider: SMS"])


async def get_sms_dealer(request: Request) -> SmsDealer:
    """The process's SMS dealer."""
    dealer: SmsDealer = request.app.state.sms_dealer
    return dealer


SmsDealerDep = Annotated[SmsDealer, Depends(get_sms_dealer)]


async def _send(appkey: str, request: Request, dealer: SmsDealer, kind: SmsKind) -> Response:
    totals = dealer.stats.totals
    totals.requests += 1
    if (refused := unauthorized(request, appkey, totals)) is not None:
        return refused
    try:
        batch = parse_sms_request(await request.body(), kind, dealer.send_no)
    except InvalidRequest as exc:
        return bad_request(exc, totals)
    dealer.ledger.of(batch.alert_id).requests += 1
    key = batch.sender_grouping_key
    return await answer_send(
        request,
        dealer,
        key,
        len(batch.recipients),
        lambda: dealer.accept(batch),
        lambda: _already_accepted(dealer, key),
    )


@router.post("/sms", summary="Send one SMS (body of at most 90 bytes) to up to 1,000 recipients")
async def send_sms(appkey: str, request: Request, dealer: SmsDealerDep) -> Response:
    return await _send(appkey, request, dealer, "SMS")


@router.post("/mms", summary="Send one LMS (body of at most 2,000 bytes) to up to 1,000 recipients")
async def send_lms(appkey: str, request: Request, dealer: SmsDealerDep) -> Response:
    return await _send(appkey, request, dealer, "LMS")


def _already_accepted(dealer: SmsDealer, grouping_key: str) -> Response:
    dealer.stats.totals.idempotent_replays += 1
    body = {
        "header": header(
            ALREADY_ACCEPTED,
            "This senderGroupingKey was accepted in the last 10 minutes; look the batch up.",
        ),
        "body": {"data": {"senderGroupingKey": grouping_key}},
    }
    return Response(orjson.dumps(body), media_type=JSON)


@router.get("/sms", summary="Look up the results of SMS and LMS batches by senderGroupingKey")
async def look_up(appkey: str, request: Request, dealer: SmsDealerDep) -> Response:
    query = lookup_query(request, appkey, dealer.stats.totals)
    if isinstance(query, Response):
        return query
    entries, total = dealer.results.page(query.grouping_key, query.page_num, query.page_size)
    body = {
        "header": header(0, "SUCCESS"),
        "body": {
            "pageNum": query.page_num,
            "pageSize": query.page_size,
            "totalCount": total,
            "data": entries,
        },
    }
    return Response(orjson.dumps(body), media_type=JSON)
