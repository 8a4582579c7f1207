"""The SMS and LMS contract over real HTTP: answers, byte limits, result codes, idempotency,
look-up, its own rate limit, faults and ledger."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from tests.clocks import ManualClock

from sandbox.client import SandboxClient
from sandbox.sms_dealer import SmsDealer

BatchBuilder = Callable[..., dict[str, Any]]
Numbers = Callable[..., list[str]]


def codes(response: httpx.Response) -> list[int]:
    return [r["resultCode"] for r in response.json()["body"]["data"]["sendResultList"]]


def refused_field(response: httpx.Response) -> str:
    message: str = response.json()["header"]["resultMessage"]
    return message


async def test_an_sms_batch_is_accepted_with_results_in_request_order(
    sandbox: SandboxClient, make_sms: BatchBuilder, phone_numbers: Numbers
) -> None:
    numbers = phone_numbers(5)
    response = await sandbox.send_sms(make_sms("sms-a:0:1", numbers))
    assert response.status_code == 200
    document = response.json()
    assert document["header"] == {"isSuccessful": True, "resultCode": 0, "resultMessage": "SUCCESS"}
    data = document["body"]["data"]
    assert data["requestId"]
    assert data["statusCode"] == "2"
    assert data["senderGroupingKey"] == "sms-a:0:1"
    results = data["sendResultList"]
    assert [r["recipientNo"] for r in results] == numbers
    assert [r["recipientSeq"] for r in results] == [1, 2, 3, 4, 5]
    assert [r["recipientGroupingKey"] for r in results] == ["1", "2", "3", "4", "5"]
    assert codes(response) == [0] * 5
    ledger = await sandbox.sms_ledger("sms-a")
    assert (ledger["accepted"], ledger["acceptances"], ledger["duplicates"]) == (5, 5, 0)
    assert ledger["requests"] == 1
    assert await sandbox.sms_recipients("sms-a") == set(numbers)
    # the KakaoTalk dealer's ledger is its own
    assert (await sandbox.ledger("sms-a"))["accepted"] == 0
    assert (await sandbox.sms_stats())["totals"]["recipients_accepted"] == 5


async def test_an_lms_has_a_title_and_an_sms_has_none(
    sandbox: SandboxClient, make_sms: BatchBuilder, phone_numbers: Numbers
) -> None:
    lms = make_sms("sms-b:0:1", phone_numbers(2), body="가" * 1000, title="태풍 대비 안내")
    assert (await sandbox.send_sms(lms, lms=True)).status_code == 200
    untitled = make_sms("sms-b:0:2", phone_numbers(2), body="가" * 100)
    refused = await sandbox.send_sms(untitled, lms=True)
    assert refused.status_code == 400
    assert "'title'" in refused_field(refused)
    titled = make_sms("sms-b:0:3", phone_numbers(2), title="제목")
    refused = await sandbox.send_sms(titled)
    assert refused.status_code == 400
    assert "'title'" in refused_field(refused)
    assert (await sandbox.sms_ledger("sms-b"))["accepted"] == 2


@pytest.mark.parametrize(
    ("body", "title", "lms", "accepted"),
    [
        ("가" * 45, None, False, True),  # 90 bytes: a Hangul syllable is two
        ("가" * 45 + "a", None, False, False),
        ("a" * 90, None, False, True),
        ("가" * 1000, "제" * 20, True, True),  # 2,000 bytes, a 40-byte subject
        ("가" * 1000 + "a", "제목", True, False),
        ("가" * 10, "제" * 20 + "a", True, False),
    ],
)
async def test_texts_are_counted_in_cp949_bytes(
    sandbox: SandboxClient,
    make_sms: BatchBuilder,
    phone_numbers: Numbers,
    body: str,
    title: str | None,
    lms: bool,
    accepted: bool,
) -> None:
    response = await sandbox.send_sms(
        make_sms("sms-c:0:1", phone_numbers(1), body=body, title=title), lms=lms
    )
    assert response.status_code == (200 if accepted else 400)
    if not accepted:
        assert "bytes" in refused_field(response)


async def test_the_link_counts_as_each_recipient_gets_it(
    sandbox: SandboxClient, make_sms: BatchBuilder, phone_numbers: Numbers
) -> None:
    # 58 bytes of text and a link of 32 characters: 90 bytes with it
    body = "가" * 29 + "##link##"
    fits = make_sms("sms-d:0:1", phone_numbers(3), body=body)
    assert (await sandbox.send_sms(fits)).status_code == 200
    longer = make_sms("sms-d:0:2", phone_numbers(3), body=body)
    longer["recipientList"][2]["templateParameter"]["link"] += "x"
    refused = await sandbox.send_sms(longer)
    assert refused.status_code == 400
    assert "91 bytes as recipientList[2] gets it" in refused_field(refused)
    missing = make_sms("sms-d:0:3", phone_numbers(3), body=body)
    del missing["recipientList"][1]["templateParameter"]
    refused = await sandbox.send_sms(missing)
    assert "recipientList[1].templateParameter" in refused_field(refused)
    ledger = await sandbox.sms_ledger("sms-d")
    assert (ledger["accepted"], ledger["requests"]) == (3, 1)


async def test_refusals_are_400_naming_the_field_or_401_and_change_nothing(
    sandbox: SandboxClient, make_sms: BatchBuilder, phone_numbers: Numbers
) -> None:
    emoji = await sandbox.send_sms(make_sms("sms-e:0:1", phone_numbers(2), body="태풍 🌀 ##link##"))
    assert emoji.status_code == 400
    assert "'body'" in refused_field(emoji)
    assert "CP949" in refused_field(emoji)
    unregistered = make_sms("sms-e:0:2", phone_numbers(2))
    unregistered["sendNo"] = "01099998888"
    refused = await sandbox.send_sms(unregistered)
    assert refused.status_code == 400
    assert "not a registered sender number" in refused_field(refused)
    assert refused.json()["header"] == {
        "resultCode": -1001,
        "resultMessage": refused_field(refused),
        "isSuccessful": False,
    }
    bad_number = make_sms("sms-e:0:3", phone_numbers(2))
    bad_number["recipientList"][1]["recipientNo"] = ""
    refused = await sandbox.send_sms(bad_number)
    assert "recipientList[1].recipientNo" in refused_field(refused)
    too_many = make_sms("sms-e:0:4", phone_numbers(1001))
    assert "recipientList" in refused_field(await sandbox.send_sms(too_many))
    not_json = await sandbox.send_sms(b"{not json")
    assert "'body'" in refused_field(not_json)
    wrong_secret = await sandbox.send_sms(
        make_sms("sms-e:0:5", phone_numbers(2)), headers={"X-Secret-Key": "wrong"}
    )
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["header"]["resultCode"] == -1002
    lookup = await sandbox.http.get(
        f"{sandbox.sms_path}/sms", params={"senderGroupingKey": "sms-e:0:1"}
    )
    assert lookup.status_code == 401
    assert (await sandbox.sms_ledger("sms-e"))["accepted"] == 0
    assert (await sandbox.sms_stats())["totals"]["bad_requests"] == 5


async def test_a_used_grouping_key_answers_minus_1005_until_it_is_forgotten(
    sandbox: SandboxClient, make_sms: BatchBuilder, phone_numbers: Numbers
) -> None:
    body = make_sms("sms-f:0:1", phone_numbers(4))
    assert codes(await sandbox.send_sms(body)) == [0] * 4
    await sandbox.set_clock(offset_seconds=9 * 60 + 50)
    again = await sandbox.send_sms(body)
    assert again.status_code == 200
    assert again.json()["header"]["resultCode"] == -1005
    assert again.json()["header"]["isSuccessful"] is False
    assert again.json()["body"]["data"] == {"senderGroupingKey": "sms-f:0:1"}
    # the same key as an LMS is the same batch
    assert (await sandbox.send_sms(body | {"title": "제목"}, lms=True)).json()["header"][
        "resultCode"
    ] == -1005
    ledger = await sandbox.sms_ledger("sms-f")
    assert (ledger["accepted"], ledger["acceptances"], ledger["requests"]) == (4, 4, 3)
    await sandbox.set_clock(offset_seconds=11 * 60)
    assert codes(await sandbox.send_sms(body)) == [0] * 4
    assert (await sandbox.sms_ledger("sms-f"))["duplicates"] == 4


async def test_results_of_sms_and_lms_are_found_at_one_path_page_by_page(
    sandbox: SandboxClient, make_sms: BatchBuilder, phone_numbers: Numbers
) -> None:
    await sandbox.configure_sms(unreachable_share=0.3)
    numbers = phone_numbers(25)
    sent = await sandbox.send_sms(make_sms("sms-g:0:1", numbers, title="제목"), lms=True)
    await sandbox.send_sms(make_sms("sms-g:0:2", phone_numbers(5, 100)))
    pages = []
    for page_num in (1, 2, 3):
        found = await sandbox.look_up_sms("sms-g:0:1", page_num=page_num, page_size=10)
        assert found.status_code == 200
        body = found.json()["body"]
        assert (body["totalCount"], body["pageNum"], body["pageSize"]) == (25, page_num, 10)
        pages.append(body["data"])
    assert [len(p) for p in pages] == [10, 10, 5]
    entries = [e for p in pages for e in p]
    request_id = sent.json()["body"]["data"]["requestId"]
    assert {e["requestId"] for e in entries} == {request_id}
    assert {e["senderGroupingKey"] for e in entries} == {"sms-g:0:1"}
    assert [e["resultCode"] for e in entries] == codes(sent)
    assert -8012 in codes(sent)
    never = (await sandbox.look_up_sms("sms-g:0:9")).json()["body"]
    assert (never["data"], never["totalCount"]) == ([], 0)
    no_key = await sandbox.http.get(
        f"{sandbox.sms_path}/sms", headers={"X-Secret-Key": "sandbox-test-secret-0123456789"}
    )
    assert no_key.status_code == 400
    assert "senderGroupingKey" in refused_field(no_key)


async def test_unreachable_numbers_are_stable_and_temporary_failures_are_drawn(
    sandbox: SandboxClient, make_sms: BatchBuilder, phone_numbers: Numbers
) -> None:
    await sandbox.configure_sms(unreachable_share=0.2)
    numbers = phone_numbers(500)
    first = codes(await sandbox.send_sms(make_sms("sms-h:0:1", numbers)))
    second = codes(await sandbox.send_sms(make_sms("sms-h:0:2", numbers)))
    assert first == second
    assert set(first) == {0, -8012}
    assert first.count(-8012) == pytest.approx(100, abs=30)
    await sandbox.configure_sms(unreachable_share=0.0, temporary_failure_share=0.5)
    third = await sandbox.send_sms(make_sms("sms-h:0:3", numbers))
    results = third.json()["body"]["data"]["sendResultList"]
    temporary = [r["recipientNo"] for r in results if r["resultCode"] == -9997]
    assert len(temporary) == pytest.approx(250, abs=50)
    assert all("temporary" in r["resultMessage"] for r in results if r["resultCode"] == -9997)
    # a temporary failure was not accepted: the ledger counts only code 0
    ledger = await sandbox.sms_ledger("sms-h")
    assert ledger["acceptances"] == first.count(0) * 2 + 500 - len(temporary)


async def test_the_sms_dealer_has_a_rate_limit_of_its_own(
    sandbox: SandboxClient,
    make_sms: BatchBuilder,
    make_batch: BatchBuilder,
    phone_numbers: Numbers,
    ticks: ManualClock,
) -> None:
    await sandbox.configure_sms(messages_per_second=1000, ratelimit_headers=True)
    first = await sandbox.send_sms(make_sms("sms-i:0:1", phone_numbers(1000)))
    assert first.status_code == 200
    assert first.headers["RateLimit-Policy"] == '"messages";q=1000;w=1;qu="messages"'
    assert first.headers["RateLimit"] == '"messages";r=0;t=1'
    second = await sandbox.send_sms(make_sms("sms-i:0:2", phone_numbers(1000, 1000)))
    assert second.status_code == 429
    assert 1 <= int(second.headers["Retry-After"]) <= 2
    assert second.json()["header"]["resultCode"] == -1003
    # the KakaoTalk dealer's budget is untouched
    kakao = await sandbox.send(make_batch("sms-i:0:3", phone_numbers(1000, 2000)))
    assert kakao.status_code == 200
    assert "RateLimit" not in kakao.headers
    assert (await sandbox.sms_ledger("sms-i"))["accepted"] == 1000
    assert (await sandbox.sms_stats())["totals"]["throttled"] == 1
    assert (await sandbox.stats())["totals"]["throttled"] == 0
    # its bucket refills at its own rate: half a batch after half a second, a whole one after
    # a second
    ticks.advance(0.5)
    early = await sandbox.send_sms(make_sms("sms-i:0:2", phone_numbers(1000, 1000)))
    assert early.status_code == 429
    ticks.advance(0.5)
    third = await sandbox.send_sms(make_sms("sms-i:0:2", phone_numbers(1000, 1000)))
    assert third.status_code == 200


async def test_injected_faults_and_their_settings(
    sandbox: SandboxClient, make_sms: BatchBuilder, phone_numbers: Numbers
) -> None:
    await sandbox.configure_sms(server_error_share=1.0)
    failed = await sandbox.send_sms(make_sms("sms-j:0:1", phone_numbers(3)))
    assert failed.status_code in (500, 502, 503, 504)
    assert failed.json()["header"]["resultCode"] == -1004
    assert (await sandbox.sms_ledger("sms-j"))["accepted"] == 0
    await sandbox.configure_sms(server_error_share=0.0, reset_share=1.0, fault_after_accept_share=1)
    with pytest.raises(httpx.TransportError):
        await sandbox.send_sms(make_sms("sms-j:0:2", phone_numbers(3)))
    # reset after it was accepted: the look-up finds it, a resend is a replay
    assert (await sandbox.look_up_sms("sms-j:0:2")).json()["body"]["totalCount"] == 3
    assert (await sandbox.sms_stats())["totals"]["resets"] == 1
    refused = await sandbox.http.patch("/_sandbox/sms/config", json={"unreachable_share": 2})
    assert refused.status_code == 400
    assert "unreachable_share" in refused.json()["detail"]
    unknown = await sandbox.http.patch("/_sandbox/sms/config", json={"non_kakao_share": 0.1})
    assert unknown.status_code == 400
    assert (await sandbox.sms_config())["reset_share"] == 1.0
    # the KakaoTalk dealer's behaviour is its own
    assert (await sandbox.config())["reset_share"] == 0.0


async def test_reset_clears_the_sms_dealer_too(
    sandbox: SandboxClient,
    make_sms: BatchBuilder,
    phone_numbers: Numbers,
    sms_dealer: SmsDealer,
) -> None:
    body = make_sms("sms-k:0:1", phone_numbers(3))
    assert (await sandbox.send_sms(body)).status_code == 200
    await sandbox.reset()
    assert (await sandbox.sms_ledger("sms-k"))["accepted"] == 0
    assert (await sandbox.look_up_sms("sms-k:0:1")).json()["body"]["totalCount"] == 0
    assert (await sandbox.sms_stats())["totals"]["requests"] == 0
    # the key is forgotten as well: the same batch is accepted again
    assert codes(await sandbox.send_sms(body)) == [0, 0, 0]
    assert sms_dealer.send_no == "0312281234"
