"""The KakaoTalk provider contract (docs/provider-api.md): send a batch, look results up;
and the answers every dealer the sandbox plays gives alike (refusals, 401, rate limit,
latency and faults), which `sandbox.sms_api` uses too."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request, Response

from sandbox.connections import reset_connection
from sandbox.dealer import ALREADY_ACCEPTED, Dealer
from sandbox.dealing import BaseDealer, Fault
from sandbox.errors import InvalidRequest
from sandbox.stats import Totals
from sandbox.validation import check_idempotency_key, parse_send_request

JSON = "application/json"
# request-level result codes of refusals (the header of a non-200 answer)
INVALID_REQUEST = -1001
UNAUTHORIZED = -1002
THROTTLED = -1003
SERVER_ERROR = -1004
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 15

router = APIRouter(prefix="/v1/appkeys/{appkey}", tags=["provider"])


async def get_dealer(request: Request) -> Dealer:
    """The process's dealer (async: FastAPI runs a plain-def dependency in a worker thread)."""
    dealer: Dealer = request.app.state.dealer
    return dealer


DealerDep = Annotated[Dealer, Depends(get_dealer)]


def header(code: int, message: str) -> dict[str, Any]:
    """The `header` object of an answer."""
    return {"resultCode": code, "resultMessage": message, "isSuccessful": code == 0}


def refusal(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    """A non-200 answer whose header says why."""
    body = orjson.dumps({"header": header(code, message)})
    return Response(body, status_code=status, media_type=JSON, headers=headers)


def unauthorized(request: Request, appkey: str, totals: Totals) -> Response | None:
    """The 401 answer, counted, when the appkey or X-Secret-Key is wrong; else None."""
    settings = request.app.state.settings
    presented = request.headers.get("x-secret-key", "")
    expected: str = settings.sandbox_secret_key.get_secret_value()
    if appkey == settings.sandbox_appkey and hmac.compare_digest(
        presented.encode(), expected.encode()
    ):
        return None
    totals.unauthorized += 1
    return refusal(401, UNAUTHORIZED, "The appkey or X-Secret-Key is wrong.")


def bad_request(exc: InvalidRequest, totals: Totals) -> Response:
    """The 400 answer, counted, naming the field at fault."""
    totals.bad_requests += 1
    return refusal(400, INVALID_REQUEST, str(exc))


@router.post("/messages", summary="Send one batch of up to 1,000 recipients")
async def send_messages(appkey: str, request: Request, dealer: DealerDep) -> Response:
    totals = dealer.stats.totals
    totals.requests += 1
    if (refused := unauthorized(request, appkey, totals)) is not None:
        return refused
    try:
        key = check_idempotency_key(request.headers.get("x-idempotency-key"))
        batch = parse_send_request(await request.body())
    except InvalidRequest as exc:
        return bad_request(exc, totals)
    dealer.ledger.of(batch.alert_id).requests += 1
    return await answer_send(
        request,
        dealer,
        key,
        len(batch.recipients),
        lambda: dealer.accept(batch, key),
        lambda: _already_accepted(dealer, batch.sender_grouping_key),
    )


async def answer_send(
    request: Request,
    dealer: BaseDealer[Any],
    key: str | None,
    messages: int,
    accept: Callable[[], bytes],
    replay: Callable[[], Response],
) -> Response:
    """The answer to a valid send of `messages` recipients under idempotency key `key`:
    `replay()` when the key was used, else rate limit, latency and faults as the dealer's
    behaviour says; `accept()` records the batch and gives the 200 body."""
    totals = dealer.stats.totals
    if key is not None and dealer.idempotency.seen(key):
        return replay()
    throttle = dealer.limiter.admit(messages, dealer.pace(), time.time())
    if throttle is not None:
        dealer.stats.throttled(time.time())
        return refusal(
            429, THROTTLED, "Over the dealer's rate; wait as Retry-After says.", throttle.headers
        )
    delay = dealer.latency()
    if delay > 0:
        await asyncio.sleep(delay)
        # a request with the same key may have been accepted while this one waited
        if key is not None and dealer.idempotency.seen(key):
            return replay()
    fault = dealer.fault()
    if fault is Fault.SERVER_ERROR:
        totals.server_errors += 1
        return refusal(dealer.server_error_status(), SERVER_ERROR, "Injected server error.")
    accepted = fault is None or dealer.accepted_before_fault()
    body = accept() if accepted else b""
    if fault is Fault.TIMEOUT:
        totals.timeouts += 1
        await asyncio.sleep(dealer.behaviour.hang_seconds)
        return refusal(504, SERVER_ERROR, "Injected timeout.")
    if fault is Fault.RESET:
        totals.resets += 1
        await reset_connection(request.scope)
        return Response(status_code=502)
    return Response(body, media_type=JSON, headers=dealer.limiter.headers())


def _already_accepted(dealer: Dealer, grouping_key: str) -> Response:
    dealer.stats.totals.idempotent_replays += 1
    body = {
        "header": header(
            ALREADY_ACCEPTED,
            "This X-Idempotency-Key was used in the last 10 minutes; look the batch up.",
        ),
        "message": {"senderGroupingKey": grouping_key},
    }
    return Response(orjson.dumps(body), media_type=JSON)


def page_param(request: Request, name: str, default: int, highest: int) -> int:
    """The whole-number query parameter `name`, from 1 to `highest`; `default` when absent."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= highest:
        raise InvalidRequest(name, f"must be a whole number from 1 to {highest}")
    return int(raw)


@dataclass(frozen=True)
class LookupQuery:
    """What a look-up asks for: the batch's grouping key and a page of its results."""

    grouping_key: str
    page_num: int
    page_size: int


def lookup_query(request: Request, appkey: str, totals: Totals) -> LookupQuery | Response:
    """The look-up's grouping key and page, the look-up counted; the refusal to answer when
    it is not authorised or malformed."""
    totals.lookups += 1
    if (refused := unauthorized(request, appkey, totals)) is not None:
        return refused
    try:
        grouping_key = request.query_params.get("senderGroupingKey")
        if not grouping_key:
            raise InvalidRequest("senderGroupingKey", "is required")
        page_num = page_param(request, "pageNum", 1, 1_000_000)
        page_size = page_param(request, "pageSize", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    except InvalidRequest as exc:
        return bad_request(exc, totals)
    return LookupQuery(grouping_key, page_num, page_size)


@router.get("/messages", summary="Look up the results of batches by senderGroupingKey")
async def look_up_messages(appkey: str, request: Request, dealer: DealerDep) -> Response:
    query = lookup_query(request, appkey, dealer.stats.totals)
    if isinstance(query, Response):
        return query
    messages, total = dealer.results.page(query.grouping_key, query.page_num, query.page_size)
    body = {
        "header": header(0, "SUCCESS"),
        "messageSearchResultResponse": {"messages": messages, "totalCount": total},
    }
    return Response(orjson.dumps(body), media_type=JSON)
