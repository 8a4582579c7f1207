"""The kakao adapter against `httpx.MockTransport`: the request it makes, the answers it maps."""

from __future__ import annotations

import gc
import uuid
import weakref
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from broadcaster.errors import (
    AlreadyAcceptedError,
    PermanentProviderError,
    RetryableProviderError,
    ThrottledError,
)
from broadcaster.providers.base import OutgoingBatch, Recipients, unbound
from broadcaster.providers.kakao import KakaoOptions, KakaoProvider
from common.messages import Button

OPTIONS = KakaoOptions(
    base_url="http://dealer.test/",
    send_path="/v1/appkeys/{appkey}/messages",
    lookup_path="/v1/appkeys/{appkey}/messages",
    appkey="app-1",
    secret="s3cret",
    sender_key="suwon-channel",
    template_code="ALERT_V1",
    default_button="자세히 보기",
)
ALERT = uuid.UUID("5b8e0000-0000-0000-0000-000000000001")


def batch(
    category: Any = "public", buttons: tuple[Button, ...] = (), count: int = 2
) -> OutgoingBatch:
    return OutgoingBatch(
        batch_id=f"{ALERT}:3:17",
        alert_id=ALERT,
        category=category,
        message_type="BRAND" if category == "promotional" else "ALIMTALK",
        title="태풍 대비 안내",
        body="강풍에 대비하세요.",
        buttons=buttons,
        recipients=Recipients(
            [100 + i for i in range(count)],
            [f"0101234{i:04d}" for i in range(count)],
            [f"https://a.test/r/tok{i}" for i in range(count)],
        ),
    )


def provider(handler: Callable[[httpx.Request], httpx.Response]) -> KakaoProvider:
    return KakaoProvider(httpx.AsyncClient(transport=httpx.MockTransport(handler)), OPTIONS)


def ok(results: list[tuple[int, int]]) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "header": {"resultCode": 0, "resultMessage": "SUCCESS", "isSuccessful": True},
            "message": {
                "requestId": "r1",
                "senderGroupingKey": f"{ALERT}:3:17",
                "sendResults": [
                    {
                        "recipientSeq": i + 1,
                        "recipientNo": "x",
                        "recipientGroupingKey": str(sid),
                        "resultCode": code,
                        "resultMessage": "m",
                    }
                    for i, (sid, code) in enumerate(results)
                ],
            },
        },
    )


async def test_send_posts_the_contract_body_with_key_and_secret() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok([(100, 1000), (101, 3018)])

    result = await provider(handler).send(batch())

    request = seen[0]
    assert request.method == "POST"
    assert str(request.url) == "http://dealer.test/v1/appkeys/app-1/messages"
    assert request.headers["X-Secret-Key"] == "s3cret"
    assert request.headers["X-Idempotency-Key"] == f"{ALERT}:3:17"
    assert request.headers["Content-Type"] == "application/json"
    body = orjson.loads(request.content)
    assert body["senderKey"] == "suwon-channel"
    assert body["messageType"] == "ALIMTALK"
    assert body["templateCode"] == "ALERT_V1"
    assert body["isAd"] is False
    assert body["senderGroupingKey"] == f"{ALERT}:3:17"
    assert body["buttons"] == [{"name": "자세히 보기", "linkMo": "#{link}"}]
    assert body["recipientList"][1] == {
        "recipientNo": "01012340001",
        "recipientGroupingKey": "101",
        "templateParameter": {"link": "https://a.test/r/tok1"},
    }
    assert (result.subscriber_ids, result.result_codes) == ([100, 101], [1000, 3018])
    assert result.messages == {101: "m"}


async def test_promotional_goes_as_brand_ad_and_keeps_the_alerts_own_link_button() -> None:
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        return ok([(100, 1000)])

    buttons = (Button(name="쿠폰 받기", link="#{link}"),)
    await provider(handler).send(batch("promotional", buttons, count=1))

    body = orjson.loads(seen[0])
    assert body["messageType"] == "BRAND"
    assert body["isAd"] is True
    assert "templateCode" not in body
    assert body["buttons"] == [{"name": "쿠폰 받기", "linkMo": "#{link}"}]


@pytest.mark.parametrize(
    ("response", "error", "retry_after"),
    [
        (httpx.Response(429, headers={"Retry-After": "3"}), ThrottledError, 3.0),
        (httpx.Response(429), ThrottledError, None),
        (httpx.Response(503), RetryableProviderError, None),
        (httpx.Response(500, headers={"Retry-After": "2"}), RetryableProviderError, 2.0),
        (httpx.Response(200, content=b"<html>"), RetryableProviderError, None),
    ],
)
async def test_transient_answers_are_retryable(
    response: httpx.Response, error: type[RetryableProviderError], retry_after: float | None
) -> None:
    with pytest.raises(error) as caught:
        await provider(lambda _: response).send(batch())
    assert caught.value.retry_after == retry_after


async def test_429_with_an_http_date_is_understood() -> None:
    response = httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})
    with pytest.raises(ThrottledError) as caught:
        await provider(lambda _: response).send(batch())
    assert caught.value.retry_after is not None and caught.value.retry_after > 1_000_000


@pytest.mark.parametrize("status", [400, 401])
async def test_refusals_are_permanent_and_say_why(status: int) -> None:
    body = {"header": {"resultCode": -1001, "resultMessage": "title is too long"}}
    with pytest.raises(PermanentProviderError) as caught:
        await provider(lambda _: httpx.Response(status, json=body)).send(batch())
    assert caught.value.status == status
    assert "title is too long" in str(caught.value)


async def test_a_used_key_raises_already_accepted() -> None:
    body = {"header": {"resultCode": -1005, "resultMessage": "duplicate", "isSuccessful": False}}
    with pytest.raises(AlreadyAcceptedError):
        await provider(lambda _: httpx.Response(200, json=body)).send(batch())


async def test_transport_failures_are_retryable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(RetryableProviderError):
        await provider(handler).send(batch())


async def test_lookup_by_grouping_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        messages = [
            {"recipientGroupingKey": "100", "recipientNo": "a", "resultCode": 1000},
            {"recipientGroupingKey": "101", "recipientNo": "b", "resultCode": 5000},
        ]
        return httpx.Response(
            200,
            json={
                "header": {"resultCode": 0},
                "messageSearchResultResponse": {"messages": messages, "totalCount": 2},
            },
        )

    result = await provider(handler).lookup(f"{ALERT}:3:17")

    assert seen[0].method == "GET"
    assert seen[0].url.params["senderGroupingKey"] == f"{ALERT}:3:17"
    assert seen[0].headers["X-Secret-Key"] == "s3cret"
    assert result is not None
    assert (result.subscriber_ids, result.result_codes) == ([100, 101], [1000, 5000])


async def test_lookup_of_an_unknown_key_is_none() -> None:
    empty = {
        "header": {"resultCode": 0},
        "messageSearchResultResponse": {"messages": [], "totalCount": 0},
    }
    assert await provider(lambda _: httpx.Response(200, json=empty)).lookup("nope:0:0") is None


@pytest.mark.parametrize(
    "results",
    [
        [{"recipientGroupingKey": "100"}],  # no resultCode
        [{"recipientGroupingKey": "not-an-id", "resultCode": 1000}],
        [{"resultCode": 1000}],  # no recipientGroupingKey
        "not a list of results",
        [["100", 1000]],
    ],
)
async def test_results_that_cannot_be_read_are_a_clear_retryable_error(results: Any) -> None:
    body = {"header": {"resultCode": 0}, "message": {"sendResults": results}}
    kakao = provider(lambda request: httpx.Response(200, json=body))
    with pytest.raises(RetryableProviderError, match="results that cannot be read"):
        await kakao.send(batch())


async def test_an_unbound_response_is_freed_without_a_garbage_collection() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=b"{}"))
    async with httpx.AsyncClient(transport=transport) as client:
        gc.disable()
        try:
            bound = await client.post("http://dealer.test/", content=b"x" * 1000)
            kept = weakref.ref(bound)
            del bound
            assert kept() is not None  # the client's reference cycle keeps it

            response = unbound(await client.post("http://dealer.test/", content=b"x" * 1000))
            assert response.content == b"{}"
            freed = weakref.ref(response)
            del response
            assert freed() is None
        finally:
            gc.enable()
