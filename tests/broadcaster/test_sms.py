"""The sms adapter: against `httpx.MockTransport` (the request it makes, the answers it
maps), and against a real `allim sandbox` process (the contract both implement)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import httpx
import orjson
import pytest
from pydantic import SecretStr, ValidationError
from tests.broadcaster.children import SANDBOX_SECRET, Sandbox

from broadcaster.config import BroadcasterSettings
from broadcaster.errors import (
    AlreadyAcceptedError,
    PermanentProviderError,
    RetryableProviderError,
    ThrottledError,
)
from broadcaster.providers.base import OutgoingBatch, Recipients
from broadcaster.providers.sms import SmsOptions, SmsProvider, allim_code, make_sms_provider
from sandbox.behaviour import SmsBehaviour
from sandbox.client import SandboxClient

OPTIONS = SmsOptions(
    base_url="http://dealer.test/", appkey="app-1", secret="s3cret", send_no="0312281234"
)
ALERT = uuid.UUID("5b8e0000-0000-0000-0000-00000000005a")
SANDBOX_SEND_NO = "15880000"  # the sandbox's default registered sender number


def batch(
    kind: Literal["SMS", "LMS"] = "SMS",
    count: int = 2,
    alert: uuid.UUID = ALERT,
    seq: int = 17,
    first: int = 0,
    body: str = "[수원시] 태풍 북상 #{link}",
) -> OutgoingBatch:
    return OutgoingBatch(
        batch_id=f"{alert}:3:{seq}",
        alert_id=alert,
        category="emergency",
        message_type=kind,
        title="태풍 대비 안내" if kind == "LMS" else "",
        body=body,
        buttons=(),
        recipients=Recipients(
            [100 + first + i for i in range(count)],
            [f"0101234{first + i:04d}" for i in range(count)],
            [f"https://a.test/r/tok{first + i}" for i in range(count)],
        ),
    )


def provider(handler: Callable[[httpx.Request], httpx.Response]) -> SmsProvider:
    return SmsProvider(httpx.AsyncClient(transport=httpx.MockTransport(handler)), OPTIONS)


def ok(results: list[tuple[int, int]]) -> httpx.Response:
    entries = [
        {
            "recipientSeq": i + 1,
            "recipientNo": "x",
            "recipientGroupingKey": str(sid),
            "resultCode": code,
            "resultMessage": "m",
        }
        for i, (sid, code) in enumerate(results)
    ]
    return httpx.Response(
        200,
        json={
            "header": {"isSuccessful": True, "resultCode": 0, "resultMessage": "SUCCESS"},
            "body": {"data": {"requestId": "r1", "statusCode": "2", "sendResultList": entries}},
        },
    )


async def test_an_sms_posts_the_contract_body_with_the_dealers_placeholder() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok([(100, 0), (101, -8012)])

    result = await provider(handler).send(batch())

    request = seen[0]
    assert request.method == "POST"
    assert str(request.url) == "http://dealer.test/sms/v3.0/appKeys/app-1/sender/sms"
    assert request.headers["X-Secret-Key"] == "s3cret"
    assert request.headers["Content-Type"] == "application/json"
    body = orjson.loads(request.content)
    assert body == {
        "sendNo": "0312281234",
        "body": "[수원시] 태풍 북상 ##link##",
        "senderGroupingKey": f"{ALERT}:3:17",
        "recipientList": [
            {
                "recipientNo": f"0101234{i:04d}",
                "recipientGroupingKey": str(100 + i),
                "templateParameter": {"link": f"https://a.test/r/tok{i}"},
            }
            for i in range(2)
        ],
    }
    assert (result.subscriber_ids, result.result_codes) == ([100, 101], [1000, -8012])
    assert result.messages == {101: "m"}


async def test_an_lms_goes_to_mms_with_its_subject() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok([(100, 0)])

    await provider(handler).send(batch("LMS", count=1))

    assert seen[0].url.path == "/sms/v3.0/appKeys/app-1/sender/mms"
    assert orjson.loads(seen[0].content)["title"] == "태풍 대비 안내"


async def test_a_kakao_batch_is_refused_before_any_request() -> None:
    kakao = OutgoingBatch(**{**batch().__dict__, "message_type": "ALIMTALK"})
    with pytest.raises(ValueError, match="ALIMTALK"):
        await provider(lambda _: ok([])).send(kakao)


def test_dealer_codes_become_allims() -> None:
    assert [allim_code(c) for c in (0, -9997, -8012, 3, -1)] == [1000, 5000, -8012, 3, -1]


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


@pytest.mark.parametrize("status", [400, 401])
async def test_refusals_are_permanent_and_say_why(status: int) -> None:
    body = {"header": {"resultCode": -1001, "resultMessage": "sendNo is not registered"}}
    with pytest.raises(PermanentProviderError) as caught:
        await provider(lambda _: httpx.Response(status, json=body)).send(batch())
    assert caught.value.status == status
    assert "sendNo is not registered" in str(caught.value)


async def test_a_used_key_raises_already_accepted() -> None:
    body = {"header": {"resultCode": -1005, "resultMessage": "used", "isSuccessful": False}}
    with pytest.raises(AlreadyAcceptedError):
        await provider(lambda _: httpx.Response(200, json=body)).send(batch())


async def test_transport_failures_are_retryable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(RetryableProviderError):
        await provider(handler).send(batch())
    with pytest.raises(RetryableProviderError):
        await provider(handler).lookup("x:0:0")


async def test_lookup_by_grouping_key_at_the_shared_path() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        data = [
            {"recipientGroupingKey": "100", "recipientNo": "a", "resultCode": 0},
            {"recipientGroupingKey": "101", "recipientNo": "b", "resultCode": -9997},
        ]
        return httpx.Response(
            200, json={"header": {"resultCode": 0}, "body": {"data": data, "totalCount": 2}}
        )

    result = await provider(handler).lookup(f"{ALERT}:3:17")

    assert seen[0].method == "GET"
    assert seen[0].url.path == "/sms/v3.0/appKeys/app-1/sender/sms"
    assert seen[0].url.params["senderGroupingKey"] == f"{ALERT}:3:17"
    assert seen[0].url.params["pageSize"] == "1000"
    assert seen[0].headers["X-Secret-Key"] == "s3cret"
    assert result is not None
    assert (result.subscriber_ids, result.result_codes) == ([100, 101], [1000, 5000])


async def test_lookup_of_an_unknown_key_is_none() -> None:
    empty = {"header": {"resultCode": 0}, "body": {"data": [], "totalCount": 0}}
    assert await provider(lambda _: httpx.Response(200, json=empty)).lookup("nope:0:0") is None


async def test_results_that_cannot_be_read_are_a_clear_retryable_error() -> None:
    body = {"header": {"resultCode": 0}, "body": {"data": {"sendResultList": [{"x": 1}]}}}
    with pytest.raises(RetryableProviderError, match="results that cannot be read"):
        await provider(lambda _: httpx.Response(200, json=body)).send(batch())


async def test_settings_make_the_adapter_only_when_complete() -> None:
    base = {"environment": "development"}
    client = httpx.AsyncClient()
    assert make_sms_provider(BroadcasterSettings(**base), client) is None
    with pytest.raises(ValidationError, match="ALLIM_BROADCASTER_SMS_SECRET"):
        BroadcasterSettings(
            **base,
            broadcaster_sms_base_url="http://sms.test",
            broadcaster_sms_appkey="k",
            broadcaster_sms_send_no="15880000",
        )
    with pytest.raises(ValidationError, match="broadcaster_sms_send_no"):
        BroadcasterSettings(**base, broadcaster_sms_send_no="031-228-1234")
    settings = BroadcasterSettings(
        **base,
        broadcaster_sms_base_url="http://sms.test",
        broadcaster_sms_appkey="k",
        broadcaster_sms_secret=SecretStr("s"),
        broadcaster_sms_send_no="15880000",
    )
    assert isinstance(make_sms_provider(settings, client), SmsProvider)
    await client.aclose()


# against a real `allim sandbox` process


@pytest.fixture
async def dealer(sandbox: Sandbox) -> AsyncIterator[tuple[SmsProvider, SandboxClient]]:
    """The adapter and a sandbox client on the session's sandbox; its SMS behaviour is put
    back to the defaults after the test."""
    options = SmsOptions(sandbox.url, "allim-sandbox", SANDBOX_SECRET, SANDBOX_SEND_NO)
    async with httpx.AsyncClient(timeout=10) as http:
        admin = SandboxClient(
            httpx.AsyncClient(base_url=sandbox.url, timeout=10), "allim-sandbox", SANDBOX_SECRET
        )
        try:
            yield SmsProvider(http, options), admin
        finally:
            await admin.configure_sms(**SmsBehaviour().model_dump())
            await admin.http.aclose()


async def test_the_sandbox_accepts_an_sms_and_an_lms_and_finds_them_again(
    dealer: tuple[SmsProvider, SandboxClient],
) -> None:
    sms, sandbox = dealer
    alert = uuid.uuid4()
    sent = await sms.send(batch(count=3, alert=alert, seq=1))
    assert sent.result_codes == [1000, 1000, 1000]
    assert sent.subscriber_ids == [100, 101, 102]
    # 100 Hangul bytes are an LMS
    long = batch("LMS", count=2, alert=alert, seq=2, first=3, body="태풍" * 25 + " #{link}")
    assert (await sms.send(long)).result_codes == [1000, 1000]
    ledger = await sandbox.sms_ledger(str(alert))
    assert (ledger["accepted"], ledger["duplicates"]) == (5, 0)
    found = await sms.lookup(f"{alert}:3:2")
    assert found is not None
    assert (found.subscriber_ids, found.result_codes) == ([103, 104], [1000, 1000])
    assert await sms.lookup(f"{alert}:3:9") is None
    with pytest.raises(AlreadyAcceptedError):
        await sms.send(batch(count=3, alert=alert, seq=1))
    assert (await sandbox.sms_ledger(str(alert)))["acceptances"] == 5


async def test_the_sandboxs_failures_per_recipient_and_its_refusals(
    dealer: tuple[SmsProvider, SandboxClient],
) -> None:
    sms, sandbox = dealer
    alert = uuid.uuid4()
    await sandbox.configure_sms(unreachable_share=1.0)
    unreachable = await sms.send(batch(alert=alert, seq=1))
    assert unreachable.result_codes == [-8012, -8012]
    assert "cannot receive" in unreachable.messages[100]
    await sandbox.configure_sms(unreachable_share=0.0, temporary_failure_share=1.0)
    assert (await sms.send(batch(alert=alert, seq=2))).result_codes == [5000, 5000]
    too_long = batch(alert=alert, seq=3, body="가" * 46)
    with pytest.raises(PermanentProviderError, match="bytes") as caught:
        await sms.send(too_long)
    assert caught.value.status == 400
    assert (await sandbox.sms_ledger(str(alert)))["accepted"] == 0


async def test_the_sandboxs_429_throttles_the_adapter(
    dealer: tuple[SmsProvider, SandboxClient],
) -> None:
    sms, sandbox = dealer
    alert = uuid.uuid4()
    await sandbox.configure_sms(messages_per_second=1000, ratelimit_headers=True)
    first = await sms.send(batch(count=1000, alert=alert, seq=1))
    assert [(q.unit, q.per_second) for q in first.quotas] == [("messages", 1000)]
    with pytest.raises(ThrottledError) as caught:
        await sms.send(batch(count=1000, alert=alert, seq=2, first=1000))
    assert caught.value.retry_after is not None and 1 <= caught.value.retry_after <= 2
    assert caught.value.quotas
    ledger: dict[str, Any] = await sandbox.sms_ledger(str(alert))
    assert (ledger["accepted"], ledger["requests"]) == (1000, 2)
