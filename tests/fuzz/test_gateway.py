"""Bad input at a real gateway: no 5xx anywhere in its OpenAPI, and fuzzed tracking tokens and
CAP documents record nothing (no engagement event, no alert, no outbox row)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
import schemathesis
from aiokafka import AIOKafkaConsumer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from tests.waiting import eventually

import _stack
from common.db import asyncpg_dsn
from common.tokens import TOKEN_LENGTH, TokenSigner
from common.topics import ENGAGEMENT, partitions

pytestmark = pytest.mark.integration


def fuzz_settings(examples: int) -> settings:
    """Short, no example database, no shrinking: a CI-sized fuzz run."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


# routes that stream until an alert ends; a fuzzed id makes them answer 404 at once, but a
# generated request must never hold the run
STREAMING = ("/v1/alerts/{alert_id}/events",)
# where bad input goes furthest (into PostgreSQL and Kafka): fuzzed harder
WRITES = {("POST", "/v1/alerts"), ("PUT", "/v1/subscribers/{recipient}")}


@dataclass(frozen=True)
class Gateway:
    """A running gateway: where it listens, its database, an operator key, its token signer."""

    url: str
    database_url: str
    api_key: str
    signer: TokenSigner


@pytest.fixture(scope="module")
async def gateway(kafka_topics: str) -> AsyncIterator[Gateway]:
    """`allim gateway` on a fresh database, so fuzzed alerts touch no other test's data."""
    async with _stack.stack("fuzz") as bench:
        api_key = await bench.operator_key()
        await asyncio.to_thread(bench.start_gateway)
        url = bench.gateway_url
        signer = TokenSigner(bench.tracking_secret.encode())
        yield Gateway(url, bench.database_url, api_key, signer)


def _openapi_server_errors(gateway: Gateway, examples: int) -> list[str]:
    """Fuzz every operation, valid and invalid requests; the ones answered 5xx."""
    schema = schemathesis.openapi.from_url(f"{gateway.url}/openapi.json")
    found: list[str] = []
    headers = {"X-API-Key": gateway.api_key}
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in STREAMING:
            continue
        strategy = st.one_of(
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        )

        @fuzz_settings(
            examples * (4 if (operation.method.upper(), operation.path) in WRITES else 1)
        )
        @given(strategy)
        def call(case: schemathesis.Case) -> None:
            response = case.call(base_url=gateway.url, headers=headers, timeout=15)
            if response.status_code >= 500:
                found.append(
                    f"{response.status_code} from {case.as_curl_command(headers)}: "
                    f"{response.text[:300]}"
                )

        call()
    return found


async def test_openapi_fuzz_finds_no_server_error(gateway: Gateway) -> None:
    found = await asyncio.to_thread(_openapi_server_errors, gateway, 40)
    assert not found, "\n".join(found)


async def _engagement_end(bootstrap: str) -> int:
    """How many records the `engagement` topic holds, over all its partitions."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        assigned = partitions(ENGAGEMENT)
        consumer.assign(assigned)
        ends = await consumer.end_offsets(assigned)
        return sum(ends.values())
    finally:
        await consumer.stop()


def _tap_fuzz(gateway: Gateway, signer: TokenSigner) -> list[str]:
    """Tap forged, truncated, foreign and random tokens; the taps not answered 404."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    alert = uuid.uuid4()
    valid = signer.sign(alert, 42, int(time.time()) + 3600)
    foreign = TokenSigner(b"a-secret-that-is-not-the-gateway-one").sign(alert, 42, 2**31)
    expired = signer.sign(alert, 42, int(time.time()) - 10)
    tokens = st.one_of(
        st.text(alphabet=alphabet, min_size=TOKEN_LENGTH, max_size=TOKEN_LENGTH),
        st.text(alphabet=alphabet + "%.~!$&'()*+,;=:@", min_size=1, max_size=120),
        st.integers(0, TOKEN_LENGTH - 1).flatmap(
            lambda i: st.sampled_from(alphabet.replace(valid[i], "")).map(
                lambda c: valid[:i] + c + valid[i + 1 :]
            )
        ),
        st.integers(1, TOKEN_LENGTH - 1).map(lambda n: valid[:n]),
        st.sampled_from([foreign, expired, valid + "A", valid + valid]),
    )
    accepted: list[str] = []
    with httpx.Client(base_url=gateway.url, timeout=15, follow_redirects=False) as client:

        @fuzz_settings(300)
        @given(tokens)
        def tap(token: str) -> None:
            answer = client.get(f"/r/{token}")
            if answer.status_code != 404:
                accepted.append(f"{token!r}: {answer.status_code}")

        tap()
    return accepted


async def test_fuzzed_tokens_record_nothing(gateway: Gateway, kafka_topics: str) -> None:
    signer = gateway.signer
    before = await _engagement_end(kafka_topics)
    accepted = await asyncio.to_thread(_tap_fuzz, gateway, signer)
    assert not accepted, accepted
    # a real tap afterwards lands on the topic: the fuzzed ones had every chance to land too
    token = signer.sign(uuid.uuid4(), 7, int(time.time()) + 3600)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15) as client:
        assert (await client.get(f"/r/{token}")).status_code == 302

    async def landed() -> bool:  # the tap is published after the answer
        return await _engagement_end(kafka_topics) > before

    await eventually(landed, 60, what="the real tap on the topic")
    assert await _engagement_end(kafka_topics) == before + 1


async def _counts(database_url: str) -> tuple[int, int]:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        alerts = await connection.fetchval("SELECT count(*) FROM alerts")
        outbox = await connection.fetchval("SELECT count(*) FROM outbox")
    finally:
        await connection.close()
    return int(alerts), int(outbox)


BROKEN_CAP = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    st.sampled_from(
        [
            b'<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
            b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><sender>&b;</sender></alert>',
            b'<!DOCTYPE alert [<!ENTITY x SYSTEM "file:///etc/passwd">]><alert>&x;</alert>',
            b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>x</identifier>',
            b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"></alert>',
            b"<alert><sender>s</sender></alert>",
            # expat refuses multi-byte encodings it cannot decode: a 400, not a crash
            b'<?xml version="1.0" encoding="EUC-KR"?>'
            b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"></alert>',
        ]
    ),
)


def _cap_fuzz(gateway: Gateway) -> list[str]:
    """POST broken CAP documents; the answers that are not a 4xx refusal."""
    wrong: list[str] = []
    headers = {"X-API-Key": gateway.api_key, "Content-Type": "application/cap+xml"}
    with httpx.Client(base_url=gateway.url, timeout=15) as client:

        @fuzz_settings(150)
        @given(BROKEN_CAP)
        def post(document: bytes) -> None:
            answer = client.post("/v1/alerts", content=document, headers=headers)
            if answer.status_code not in (400, 413, 422):
                wrong.append(f"{document[:120]!r}: {answer.status_code} {answer.text[:200]}")

        post()
    return wrong


async def test_fuzzed_cap_documents_record_nothing(gateway: Gateway) -> None:
    before = await _counts(gateway.database_url)
    wrong = await asyncio.to_thread(_cap_fuzz, gateway)
    assert not wrong, "\n".join(wrong)
    assert await _counts(gateway.database_url) == before
