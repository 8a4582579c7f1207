"""Bad input at a real gateway: schemathesis, with every check, finds its OpenAPI document and
its answers in agreement; fuzzed tracking tokens and CAP documents record nothing (no
engagement event, no alert, no outbox row)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from tests.waiting import eventually

import _stack
from common.db import asyncpg_dsn, create_engine, session_factory
from common.tokens import TOKEN_LENGTH, TokenSigner
from common.topics import ENGAGEMENT, partitions
from gateway.auth import enrol

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


SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# which key each operation takes, what the stream reads, the documented refusals
SCHEMATHESIS_CONFIG = Path(__file__).with_name("schemathesis.toml")
# cases per operation in each phase: about 30 s on two cores for the whole run
SCHEMATHESIS_EXAMPLES = 25
SCHEMATHESIS_TIMEOUT_SECONDS = 300
# the run's seed: fixed, so `make test` tries the same cases until the document changes;
# ALLIM_FUZZ_SEED=random (or another number) explores further. A failure prints its seed.
SCHEMATHESIS_SEED = os.environ.get("ALLIM_FUZZ_SEED", "20261207")
# subscribers the document's examples and the test sends reach: an alert to a district or
# tag nobody has is refused, and a test send needs someone tagged for tests
SEEDED = {"01099990000": "장안구", "01099990001": "권선구"}
SEEDED_TAGS = ["bus", "tester"]


@dataclass(frozen=True)
class Gateway:
    """A running gateway: where it listens, its database, an operator's, an approver's and
    an admin's keys, its token signer."""

    url: str
    database_url: str
    api_key: str
    approver_key: str
    admin_key: str
    signer: TokenSigner


async def _key(database_url: str, role: str) -> str:
    """The key of a new user with `role`."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_factory(engine)() as session, session.begin():
            _, key = await enrol(session, f"fuzz {role} {uuid.uuid4().hex[:8]}", role)
            return key
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
async def gateway(kafka_topics: str) -> AsyncIterator[Gateway]:
    """`allim gateway` on a fresh database, so fuzzed alerts touch no other test's data;
    approval on, as deployed, so an operator's alert waits for the approver."""
    async with _stack.stack("fuzz") as bench:
        api_key = await bench.operator_key()
        approver_key = await _key(bench.database_url, "approver")
        admin_key = await _key(bench.database_url, "admin")
        await asyncio.to_thread(bench.start_gateway, gateway_approval_required="true")
        url = bench.gateway_url
        async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": api_key}) as client:
            for number, district in SEEDED.items():
                body = {"district": district, "tags": SEEDED_TAGS}
                answer = await client.put(f"/v1/subscribers/{number}", json=body)
                assert answer.status_code == 201, answer.text
        signer = TokenSigner(bench.tracking_secret.encode())
        yield Gateway(url, bench.database_url, api_key, approver_key, admin_key, signer)


def _schemathesis(gateway: Gateway) -> subprocess.CompletedProcess[str]:
    """`schemathesis run --checks all` at the gateway's document, positive and negative."""
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(SCHEMATHESIS_CONFIG),
        "--no-color",
        "run",
        f"{gateway.url}/openapi.json",
        "--checks",
        "all",
        "--mode",
        "all",
        "--max-examples",
        str(SCHEMATHESIS_EXAMPLES),
        # one worker: the two cores also run the gateway and PostgreSQL
        "--workers",
        "1",
    ]
    if SCHEMATHESIS_SEED != "random":
        command += ["--seed", SCHEMATHESIS_SEED]
    keys = {
        "ALLIM_OPERATOR_KEY": gateway.api_key,
        "ALLIM_APPROVER_KEY": gateway.approver_key,
        "ALLIM_ADMIN_KEY": gateway.admin_key,
    }
    return subprocess.run(
        command,
        env=os.environ | keys,
        capture_output=True,
        text=True,
        timeout=SCHEMATHESIS_TIMEOUT_SECONDS,
        check=False,
    )


async def test_schemathesis_with_every_check_finds_nothing(gateway: Gateway) -> None:
    run = await asyncio.to_thread(_schemathesis, gateway)
    # the output ends with the seed, so a failure can be replayed with `--seed`
    assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-2000:]
    # every case it generated passed, and it generated some
    assert re.search(r"\b([1-9]\d*) generated, \1 passed", run.stdout), run.stdout[-4000:]
    # and it left the keys it ran with working: the tests after it use them too
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15) as client:
        for key, path in (
            (gateway.api_key, "/v1/alerts"),
            (gateway.approver_key, "/v1/audit"),
            (gateway.admin_key, "/v1/keys"),
        ):
            answer = await client.get(path, headers={"X-API-Key": key})
            assert answer.status_code == 200, f"GET {path}: {answer.status_code} {answer.text}"


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
