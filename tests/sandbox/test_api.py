"""The provider contract over real HTTP: answers, result codes, idempotency, look-up."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from sandbox.client import SandboxClient
from sandbox.clock import KST

BatchBuilder = Callable[..., dict[str, Any]]
Numbers = Callable[..., list[str]]


def codes(response: httpx.Response) -> list[int]:
    return [r["resultCode"] for r in response.json()["message"]["sendResults"]]


async def test_a_batch_is_accepted_with_results_in_request_order(
    sandbox: SandboxClient, make_batch: BatchBuilder, phone_numbers: Numbers
) -> None:
    numbers = phone_numbers(5)
    response = await sandbox.send(make_batch("alert-a:0:1", numbers), idempotency_key="alert-a:0:1")
    assert response.status_code == 200
    document = response.json()
    assert document["header"] == {"resultCode": 0, "resultMessage": "SUCCESS", "isSuccessful": True}
    assert document["message"]["senderGroupingKey"] == "alert-a:0:1"
    assert document["message"]["requestId"]
    results = document["message"]["sendResults"]
    assert [r["recipientNo"] for r in results] == numbers
    assert [r["recipientSeq"] for r in results] == [1, 2, 3, 4, 5]
    assert [r["recipientGroupingKey"] for r in results] == ["1", "2", "3", "4", "5"]
    assert codes(response) == [1000] * 5
    ledger = await sandbox.ledger("alert-a")
    assert (ledger["accepted"], ledger["acceptances"], ledger["duplicates"]) == (5, 5, 0)


async def test_wrong_secret_or_appkey_is_401_and_changes_nothing(
    sandbox: SandboxClient, make_batch: BatchBuilder, phone_numbers: Numbers
) -> None:
    body = make_batch("alert-b:0:1", phone_numbers(3))
    wrong_secret = await sandbox.send(body, headers={"X-Secret-Key": "not-the-secret"})
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["header"]["isSuccessful"] is False
    wrong_appkey = await sandbox.http.post(
        "/v1/appkeys/other/messages",
        json=body,
        headers={"X-Secret-Key": "sandbox-test-secret-0123456789"},
    )
    assert wrong_appkey.status_code == 401
    no_secret = await sandbox.http.post(sandbox.messages_path, json=body)
    assert no_secret.status_code == 401
    assert (await sandbox.ledger("alert-b"))["requests"] == 0
    assert (await sandbox.look_up("alert-b:0:1")).json()["messageSearchResultResponse"][
        "totalCount"
    ] == 0
    lookup = await sandbox.http.get(
        sandbox.messages_path, params={"senderGroupingKey": "alert-b:0:1"}
    )
    assert lookup.status_code == 401


async def test_bad_requests_are_400_naming_the_field_and_change_nothing(
    sandbox: SandboxClient, make_batch: BatchBuilder, phone_numbers: Numbers
) -> None:
    body = make_batch("alert-c:0:1", phone_numbers(3))
    body["recipientList"][2]["recipientNo"] = ""
    response = await sandbox.send(body)
    assert response.status_code == 400
    assert "recipientList[2].recipientNo" in response.json()["header"]["resultMessage"]
    not_json = await sandbox.send(b"{not json")
    assert not_json.status_code == 400
    assert "'body'" in not_json.json()["header"]["resultMessage"]
    long_key = await sandbox.send(
        make_batch("alert-c:0:2", phone_numbers(1)), idempotency_key="k" * 65
    )
    assert long_key.status_code == 400
    assert "X-Idempotency-Key" in long_key.json()["header"]["resultMessage"]
    assert (await sandbox.ledger("alert-c"))["accepted"] == 0
    assert (await sandbox.stats())["totals"]["bad_requests"] == 3


async def test_a_used_idempotency_key_answers_minus_1005_for_ten_minutes(
    sandbox: SandboxClient, make_batch: BatchBuilder, phone_numbers: Numbers
) -> None:
    body = make_batch("alert-d:0:1", phone_numbers(4))
    first = await sandbox.send(body, idempotency_key="alert-d:0:1")
    assert first.status_code == 200
    assert first.json()["header"]["resultCode"] == 0
    await sandbox.set_clock(offset_seconds=9 * 60 + 50)
    again = await sandbox.send(body, idempotency_key="alert-d:0:1")
    assert again.status_code == 200
    assert again.json()["header"]["resultCode"] == -1005
    assert again.json()["header"]["isSuccessful"] is False
    assert "sendResults" not in again.json()["message"]
    ledger = await sandbox.ledger("alert-d")
    assert (ledger["accepted"], ledger["acceptances"], ledger["requests"]) == (4, 4, 2)
    # eleven minutes on the key is forgotten: the same batch is accepted again, a duplicate
    await sandbox.set_clock(offset_seconds=11 * 60)
    late = await sandbox.send(body, idempotency_key="alert-d:0:1")
    assert late.json()["header"]["resultCode"] == 0
    ledger = await sandbox.ledger("alert-d")
    assert (ledger["accepted"], ledger["acceptances"], ledger["duplicates"]) == (4, 8, 4)
    assert ledger["duplicate_recipients"] == phone_numbers(4)


async def test_results_are_found_by_sender_grouping_key_page_by_page(
    sandbox: SandboxClient, make_batch: BatchBuilder, phone_numbers: Numbers
) -> None:
    await sandbox.configure(inactive_share=0.3)
    numbers = phone_numbers(25)
    sent = await sandbox.send(make_batch("alert-e:0:1", numbers), idempotency_key="alert-e:0:1")
    await sandbox.send(make_batch("alert-e:0:2", phone_numbers(5, 100)))
    replay = await sandbox.send(make_batch("alert-e:0:1", numbers), idempotency_key="alert-e:0:1")
    assert replay.json()["header"]["resultCode"] == -1005
    pages = []
    for page_num in (1, 2, 3):
        response = await sandbox.look_up("alert-e:0:1", page_num=page_num, page_size=10)
        assert response.status_code == 200
        found = response.json()["messageSearchResultResponse"]
        assert found["totalCount"] == 25
        pages.append(found["messages"])
    assert [len(p) for p in pages] == [10, 10, 5]
    entries = [e for page in pages for e in page]
    request_id = sent.json()["message"]["requestId"]
    assert {e["requestId"] for e in entries} == {request_id}
    assert {e["senderGroupingKey"] for e in entries} == {"alert-e:0:1"}
    expected = [
        {k: r[k] for k in ("recipientSeq", "recipientNo", "resultCode")}
        for r in sent.json()["message"]["sendResults"]
    ]
    assert [{k: e[k] for k in ("recipientSeq", "recipientNo", "resultCode")} for e in entries] == (
        expected
    )
    unknown = await sandbox.look_up("alert-e:9:9")
    assert unknown.json()["messageSearchResultResponse"] == {"messages": [], "totalCount": 0}


async def test_look_up_checks_its_parameters(sandbox: SandboxClient) -> None:
    missing = await sandbox.http.get(
        sandbox.messages_path, headers={"X-Secret-Key": "sandbox-test-secret-0123456789"}
    )
    assert missing.status_code == 400
    assert "senderGroupingKey" in missing.json()["header"]["resultMessage"]
    too_big = await sandbox.look_up("x:0:1", page_size=1001)
    assert too_big.status_code == 400
    assert "pageSize" in too_big.json()["header"]["resultMessage"]
    zero = await sandbox.look_up("x:0:1", page_num=0)
    assert zero.status_code == 400
    assert "pageNum" in zero.json()["header"]["resultMessage"]


async def test_inactive_and_non_kakao_recipients_are_stable_per_number(
    sandbox: SandboxClient, make_batch: BatchBuilder, phone_numbers: Numbers
) -> None:
    await sandbox.configure(inactive_share=0.1, non_kakao_share=0.2)
    numbers = phone_numbers(1000)
    first = codes(await sandbox.send(make_batch("alert-f:0:1", numbers)))
    second = codes(await sandbox.send(make_batch("alert-f:0:2", numbers)))
    assert first == second
    assert 50 <= first.count(3018) <= 150
    assert 140 <= first.count(3019) <= 260
    assert set(first) == {1000, 3018, 3019}
    ledger = await sandbox.ledger("alert-f")
    assert ledger["accepted"] == first.count(1000)
    accepted = {n for n, code in zip(numbers, first, strict=True) if code == 1000}
    assert await sandbox.recipients("alert-f") == accepted
    # a larger share keeps every number that was refused before refused
    await sandbox.configure(inactive_share=0.2, non_kakao_share=0.2)
    third = codes(await sandbox.send(make_batch("alert-f:0:3", numbers)))
    assert all(c == 3018 for c, before in zip(third, first, strict=True) if before == 3018)


async def test_temporary_failures_are_5000_and_not_accepted(
    sandbox: SandboxClient, make_batch: BatchBuilder, phone_numbers: Numbers
) -> None:
    await sandbox.configure(temporary_failure_share=1.0)
    response = await sandbox.send(make_batch("alert-g:0:1", phone_numbers(10)))
    assert codes(response) == [5000] * 10
    assert (await sandbox.ledger("alert-g"))["accepted"] == 0
    await sandbox.configure(temporary_failure_share=0.5)
    mixed = codes(await sandbox.send(make_batch("alert-g:0:2", phone_numbers(400))))
    assert 140 <= mixed.count(5000) <= 260
    assert (await sandbox.ledger("alert-g"))["accepted"] == mixed.count(1000)


async def test_brand_messages_are_refused_in_quiet_hours_on_the_sandbox_clock(
    sandbox: SandboxClient, make_batch: BatchBuilder, phone_numbers: Numbers
) -> None:
    numbers = phone_numbers(3)
    clock = await sandbox.set_clock(now=datetime(2026, 11, 25, 21, 0, tzinfo=KST))
    assert clock["brand_quiet_hours"] is True
    brand = await sandbox.send(make_batch("alert-h:0:1", numbers, message_type="BRAND"))
    assert codes(brand) == [3022] * 3
    alimtalk = await sandbox.send(make_batch("alert-h:0:2", numbers))
    assert codes(alimtalk) == [1000] * 3
    await sandbox.set_clock(now=datetime(2026, 11, 26, 7, 59, tzinfo=KST))
    assert codes(await sandbox.send(make_batch("alert-h:0:3", numbers, "BRAND"))) == [3022] * 3
    clock = await sandbox.set_clock(now=datetime(2026, 11, 26, 8, 0, 30, tzinfo=KST))
    assert clock["brand_quiet_hours"] is False
    assert codes(await sandbox.send(make_batch("alert-h:0:4", numbers, "BRAND"))) == [1000] * 3
    await sandbox.set_clock(now=datetime(2026, 11, 26, 20, 49, tzinfo=KST))
    assert codes(await sandbox.send(make_batch("alert-h:0:5", numbers, "BRAND"))) == [1000] * 3
    ledger = await sandbox.ledger("alert-h")
    assert (ledger["accepted"], ledger["acceptances"]) == (3, 9)


async def test_clock_changes_are_checked(sandbox: SandboxClient) -> None:
    naive = await sandbox.http.put("/_sandbox/clock", json={"now": "2026-11-25T21:00:00"})
    assert naive.status_code == 422
    both = await sandbox.http.put(
        "/_sandbox/clock", json={"now": "2026-11-25T21:00:00+09:00", "offset_seconds": 1}
    )
    assert both.status_code == 422
    assert (await sandbox.http.get("/_sandbox/clock")).json()["offset_seconds"] == 0.0
