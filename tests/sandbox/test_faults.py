"""Rate limits, latency and injected faults, changed live through the admin endpoint."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest
from tests.clocks import ManualClock

from sandbox.client import SandboxClient
from sandbox.dealer import Dealer

BatchBuilder = Callable[..., dict[str, Any]]
Numbers = Callable[..., list[str]]


async def test_messages_over_the_rate_are_429_with_retry_after_and_ratelimit_headers(
    sandbox: SandboxClient, make_batch: BatchBuilder, phone_numbers: Numbers, ticks: ManualClock
) -> None:
    await sandbox.configure(messages_per_second=1000, ratelimit_headers=True)
    first = await sandbox.send(make_batch("rate-a:0:1", phone_numbers(1000)))
    assert first.status_code == 200
    # every answer advertises the quota, and what the request left of it
    assert first.headers["RateLimit-Policy"] == '"messages";q=1000;w=1;qu="messages"'
    assert first.headers["RateLimit"] == '"messages";r=0;t=1'
    second = await sandbox.send(make_batch("rate-a:0:2", phone_numbers(1000, 1000)))
    assert second.status_code == 429
    assert second.headers["Retry-After"].isdigit()
    assert 1 <= int(second.headers["Retry-After"]) <= 2
    assert second.headers["RateLimit-Policy"] == '"messages";q=1000;w=1;qu="messages"'
    assert second.headers["RateLimit"].startswith('"messages";r=')
    assert second.json()["header"]["isSuccessful"] is False
    ledger = await sandbox.ledger("rate-a")
    assert ledger["accepted"] == 1000
    assert (await sandbox.stats())["totals"]["throttled"] == 1
    # the bucket refills at the configured rate: half a batch after half a second, a whole one
    # after a second
    ticks.advance(0.5)
    early = await sandbox.send(make_batch("rate-a:0:3", phone_numbers(1000, 2000)))
    assert early.status_code == 429
    ticks.advance(0.5)
    third = await sandbox.send(make_batch("rate-a:0:3", phone_numbers(1000, 2000)))
    assert third.status_code == 200
    assert (await sandbox.ledger("rate-a"))["accepted"] == 2000


async def test_requests_over_the_rate_are_429_and_retry_after_can_be_an_http_date(
    sandbox: SandboxClient, make_batch: BatchBuilder, phone_numbers: Numbers
) -> None:
    await sandbox.configure(requests_per_second=2, retry_after_http_date=True)
    statuses = [
        (await sandbox.send(make_batch(f"rate-b:0:{i}", phone_numbers(1, i)))).status_code
        for i in range(3)
    ]
    assert statuses == [200, 200, 429]
    asked = datetime.now(UTC)
    refused = await sandbox.send(make_batch("rate-b:0:9", phone_numbers(1, 9)))
    answered = datetime.now(UTC)
    assert refused.status_code == 429
    # a whole second, 1 or 2 of them after the refusal (which came between these two)
    when = parsedate_to_datetime(refused.headers["Retry-After"])
    assert asked < when <= answered + timedelta(seconds=2)
    # the RateLimit fields are off unless asked for
    assert "RateLimit-Policy" not in refused.headers
    assert "RateLimit" not in refused.headers
    # lifting the limit takes effect at once
    await sandbox.configure(requests_per_second=0)
    assert (await sandbox.send(make_batch("rate-b:0:10", phone_numbers(1, 10)))).status_code == 200


async def test_injected_server_errors_accept_nothing(
    sandbox: SandboxClient, make_batch: BatchBuilder, phone_numbers: Numbers
) -> None:
    await sandbox.configure(server_error_share=1.0)
    statuses = {
        (
            await sandbox.send(
                make_batch(f"fault-a:0:{i}", phone_numbers(5)), idempotency_key=f"k{i}"
            )
        ).status_code
        for i in range(20)
    }
    assert statuses <= {500, 502, 503, 504}
    assert len(statuses) > 1
    assert (await sandbox.ledger("fault-a"))["accepted"] == 0
    # nothing was accepted, so the key is free
    await sandbox.configure(server_error_share=0.0)
    retried = await sandbox.send(make_batch("fault-a:0:0", phone_numbers(5)), idempotency_key="k0")
    assert retried.json()["header"]["resultCode"] == 0
    assert (await sandbox.stats())["totals"]["server_errors"] == 20


@pytest.mark.parametrize(("after_accept", "accepted"), [(1.0, 3), (0.0, 0)])
async def test_a_timeout_hangs_past_the_client_and_may_have_accepted_the_batch(
    sandbox: SandboxClient,
    make_batch: BatchBuilder,
    phone_numbers: Numbers,
    after_accept: float,
    accepted: int,
) -> None:
    await sandbox.configure(timeout_share=1.0, fault_after_accept_share=after_accept)
    body = make_batch("fault-b:0:1", phone_numbers(3))
    with pytest.raises(httpx.ReadTimeout):
        await sandbox.http.post(
            sandbox.messages_path,
            json=body,
            headers={"X-Secret-Key": "sandbox-test-secret-0123456789", "X-Idempotency-Key": "t1"},
            timeout=0.3,
        )
    assert (await sandbox.ledger("fault-b"))["accepted"] == accepted
    await sandbox.configure(timeout_share=0.0)
    retry = await sandbox.send(body, idempotency_key="t1")
    assert retry.json()["header"]["resultCode"] == (-1005 if accepted else 0)
    assert (await sandbox.ledger("fault-b"))["acceptances"] == 3
    assert (await sandbox.stats())["totals"]["timeouts"] == 1


@pytest.mark.parametrize(("after_accept", "accepted"), [(1.0, 4), (0.0, 0)])
async def test_a_reset_connection_fails_the_request_and_may_have_accepted_the_batch(
    sandbox: SandboxClient,
    make_batch: BatchBuilder,
    phone_numbers: Numbers,
    after_accept: float,
    accepted: int,
) -> None:
    await sandbox.configure(reset_share=1.0, fault_after_accept_share=after_accept)
    body = make_batch("fault-c:0:1", phone_numbers(4))
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        await sandbox.send(body, idempotency_key="r1")
    assert (await sandbox.ledger("fault-c"))["accepted"] == accepted
    await sandbox.configure(reset_share=0.0)
    retry = await sandbox.send(body, idempotency_key="r1")
    assert retry.json()["header"]["resultCode"] == (-1005 if accepted else 0)
    assert (await sandbox.stats())["totals"]["resets"] == 1


async def test_fault_shares_split_requests(
    sandbox: SandboxClient, make_batch: BatchBuilder, phone_numbers: Numbers
) -> None:
    await sandbox.configure(server_error_share=0.5)
    statuses = [
        (await sandbox.send(make_batch(f"fault-d:0:{i}", phone_numbers(1, i)))).status_code
        for i in range(200)
    ]
    ok = statuses.count(200)
    assert 60 <= ok <= 140
    assert (await sandbox.ledger("fault-d"))["accepted"] == ok


async def test_latency_is_fixed_or_lognormal(
    sandbox: SandboxClient, dealer: Dealer, make_batch: BatchBuilder, phone_numbers: Numbers
) -> None:
    await sandbox.configure(latency="fixed", latency_ms=150)
    started = time.perf_counter()
    assert (await sandbox.send(make_batch("slow:0:1", phone_numbers(1)))).status_code == 200
    assert time.perf_counter() - started >= 0.15
    # lognormal: the draws themselves (the time a send takes adds this machine's load)
    await sandbox.configure(latency="lognormal", latency_ms=20, latency_p99_ms=200, seed=11)
    drawn = sorted(dealer.latency() for _ in range(5000))
    assert drawn[2500] == pytest.approx(0.020, rel=0.1)
    assert drawn[4950] == pytest.approx(0.200, rel=0.25)


async def test_an_invalid_behaviour_is_refused_naming_the_setting_and_changes_nothing(
    sandbox: SandboxClient,
) -> None:
    before = await sandbox.config()
    for patch, field in (
        ({"messages_per_second": -1}, "messages_per_second"),
        ({"no_such_knob": 1}, "no_such_knob"),
        ({"profile": "loud"}, "profile"),
        ({"server_error_share": 0.6, "reset_share": 0.6}, "reset_share"),
        ({"latency": "lognormal", "latency_ms": 50, "latency_p99_ms": 10}, "latency_p99_ms"),
    ):
        response = await sandbox.http.patch("/_sandbox/config", json=patch)
        assert response.status_code == 400, patch
        assert response.headers["content-type"] == "application/problem+json"
        assert field in response.json()["detail"] or field in str(response.json()["errors"])
    assert await sandbox.config() == before


async def test_stats_count_answers_and_accepted_recipients_per_second_until_reset(
    sandbox: SandboxClient, make_batch: BatchBuilder, phone_numbers: Numbers
) -> None:
    await sandbox.send(make_batch("stats:0:1", phone_numbers(300)), idempotency_key="s1")
    await sandbox.send(make_batch("stats:0:1", phone_numbers(300)), idempotency_key="s1")
    await sandbox.send(b"[]")
    stats = await sandbox.stats()
    totals = stats["totals"]
    assert totals["requests"] == 3
    assert totals["batches_accepted"] == 1
    assert totals["recipients_accepted"] == 300
    assert totals["idempotent_replays"] == 1
    assert totals["bad_requests"] == 1
    assert sum(n for _, n in stats["accepted_per_second"]) == 300
    assert abs(stats["accepted_per_second"][-1][0] - time.time()) < 5
    await sandbox.reset()
    stats = await sandbox.stats()
    assert stats["totals"]["requests"] == 0
    assert stats["accepted_per_second"] == []
    assert (await sandbox.ledger("stats"))["accepted"] == 0
    # the key was forgotten too
    again = await sandbox.send(make_batch("stats:0:1", phone_numbers(300)), idempotency_key="s1")
    assert again.json()["header"]["resultCode"] == 0


async def test_changing_other_settings_keeps_the_rate_limiters_state(
    sandbox: SandboxClient, make_batch: BatchBuilder, phone_numbers: Numbers
) -> None:
    await sandbox.configure(requests_per_second=1)
    assert (await sandbox.send(make_batch("rate-c:0:1", phone_numbers(1)))).status_code == 200
    await sandbox.configure(latency_ms=1)
    assert (await sandbox.send(make_batch("rate-c:0:2", phone_numbers(1)))).status_code == 429
