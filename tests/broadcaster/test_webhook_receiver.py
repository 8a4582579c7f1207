"""The webhook adapter against a real HTTP receiver on a loopback port (uvicorn).

The receiver does what the adapter's docstring asks of one: it checks the signature and the
timestamp, and deduplicates on `X-Idempotency-Key`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tests.waiting import eventually

from broadcaster.errors import PermanentProviderError, RetryableProviderError, ThrottledError
from broadcaster.providers.base import DELIVERED, OutgoingBatch, Recipients
from broadcaster.providers.webhook import WebhookProvider, signature
from cli.processes import free_port

SECRET = "receiver-shared-secret-0123"
ALERT = uuid.uuid4()


@dataclass
class Receiver:
    """What the receiver saw, and what it answers next."""

    url: str = ""
    recipients: dict[int, int] = field(default_factory=dict)  # subscriber -> times received
    keys: set[str] = field(default_factory=set)
    requests: int = 0
    answers: list[int] = field(default_factory=list)  # statuses to answer first, in order
    # cleared: a request that arrives is held (after its checks) until it is set again
    answering: asyncio.Event = field(default_factory=asyncio.Event)
    held: int = 0  # requests held now

    async def handle(self, request: Request) -> Response:
        self.requests += 1
        body = await request.body()
        timestamp = request.headers.get("X-Allim-Timestamp", "")
        given = request.headers.get("X-Allim-Signature", "")
        if not hmac.compare_digest(given, signature(SECRET, timestamp, body)):
            return Response("bad signature", status_code=401)
        if abs(time.time() - int(timestamp)) > 300:
            return Response("stale timestamp", status_code=401)
        if not self.answering.is_set():
            self.held += 1
            await self.answering.wait()
            self.held -= 1
        if self.answers:
            status = self.answers.pop(0)
            if status != 200:
                return Response(status_code=status, headers={"Retry-After": "1"})
        key = request.headers["X-Idempotency-Key"]
        if key not in self.keys:  # a resent batch is taken once
            self.keys.add(key)
            for recipient in orjson.loads(body)["recipients"]:
                sid = recipient["subscriber_id"]
                self.recipients[sid] = self.recipients.get(sid, 0) + 1
        return Response(status_code=202)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()
    state.answering.set()
    app = Starlette(routes=[Route("/hook", state.handle, methods=["POST"])])
    # a socket listening before the server starts: requests wait in its backlog meanwhile
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", ws="none", log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    state.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    yield state
    state.answering.set()  # a test that failed while holding a request lets it go
    server.should_exit = True
    await serving
    sock.close()


def make_batch(seq: int, size: int = 100) -> OutgoingBatch:
    first = seq * size
    return OutgoingBatch(
        batch_id=f"{ALERT}:0:{seq}",
        alert_id=ALERT,
        category="emergency",
        message_type="ALIMTALK",
        title="호우 경보",
        body="하천 주변 접근을 삼가세요.",
        buttons=(),
        recipients=Recipients(
            list(range(first, first + size)),
            [f"010{i:08d}" for i in range(first, first + size)],
            [f"http://127.0.0.1/r/{i}" for i in range(first, first + size)],
        ),
    )


@contextlib.asynccontextmanager
async def provider_for(
    url: str, secret: str = SECRET, http_timeout: float | httpx.Timeout = 5.0
) -> AsyncIterator[WebhookProvider]:
    async with httpx.AsyncClient(timeout=http_timeout) as client:
        yield WebhookProvider(client, url, secret)


async def test_signed_batches_reach_a_real_receiver(receiver: Receiver) -> None:
    async with provider_for(receiver.url) as provider:
        results = await asyncio.gather(*(provider.send(make_batch(seq)) for seq in range(10)))
    assert receiver.recipients == dict.fromkeys(range(1000), 1)
    assert all(code == DELIVERED for result in results for code in result.result_codes)


async def test_a_resent_batch_is_taken_once(receiver: Receiver) -> None:
    receiver.answers = [503]
    async with provider_for(receiver.url) as provider:
        with pytest.raises(RetryableProviderError) as caught:
            await provider.send(make_batch(0))
        assert caught.value.retry_after == 1.0
        assert receiver.recipients == {}
        await provider.send(make_batch(0))
        await provider.send(make_batch(0))  # fate unknown to the sender: sent again
    assert receiver.requests == 3
    assert receiver.recipients == dict.fromkeys(range(100), 1)


async def test_429_from_a_real_receiver(receiver: Receiver) -> None:
    receiver.answers = [429]
    async with provider_for(receiver.url) as provider:
        with pytest.raises(ThrottledError) as caught:
            await provider.send(make_batch(1))
    assert caught.value.retry_after == 1.0


async def test_a_slow_receiver_times_out_and_the_resend_is_deduplicated(
    receiver: Receiver,
) -> None:
    receiver.answering.clear()
    # the receiver holds its answer until the sender has given up waiting for it
    async with provider_for(receiver.url, http_timeout=httpx.Timeout(30, read=0.1)) as provider:
        with pytest.raises(RetryableProviderError, match="ReadTimeout"):
            await provider.send(make_batch(2))
    await eventually(lambda: receiver.held == 1)  # it did arrive, and waits
    assert receiver.recipients == {}
    # then takes the batch: the sender never learns it was taken
    receiver.answering.set()
    await eventually(lambda: receiver.held == 0 and len(receiver.recipients) == 100)
    async with provider_for(receiver.url) as provider:
        await provider.send(make_batch(2))
    assert receiver.requests == 2
    assert receiver.recipients == dict.fromkeys(range(200, 300), 1)


async def test_a_wrong_secret_is_a_permanent_refusal(receiver: Receiver) -> None:
    async with provider_for(receiver.url, secret="not-the-receiver-secret") as provider:
        with pytest.raises(PermanentProviderError) as caught:
            await provider.send(make_batch(3))
    assert caught.value.status == 401
    assert receiver.recipients == {}


async def test_nobody_listening_is_retryable() -> None:
    async with provider_for(f"http://127.0.0.1:{free_port()}/hook") as provider:
        with pytest.raises(RetryableProviderError, match="ConnectError"):
            await provider.send(make_batch(4))
