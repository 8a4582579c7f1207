"""The webhook adapter: body shape, signature, and how each answer maps to the error tree."""

from __future__ import annotations

import hmac
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import orjson
import pytest

from broadcaster.config import BroadcasterSettings
from broadcaster.errors import PermanentProviderError, RetryableProviderError, ThrottledError
from broadcaster.main import webhook_provider
from broadcaster.providers.base import DELIVERED, OutgoingBatch, Recipients
from broadcaster.providers.webhook import WebhookProvider, signature
from common.messages import Button

ALERT = uuid.UUID("0b9a3c1e-5d4f-4a8b-9c7d-2e1f0a6b3c5d")
URL = "https://receiver.example/allim"
NOW = 1_795_000_000.0


def make_batch(seq: int = 0, size: int = 3) -> OutgoingBatch:
    return OutgoingBatch(
        batch_id=f"{ALERT}:0:{seq}",
        alert_id=ALERT,
        category="public",
        message_type="ALIMTALK",
        title="태풍 대비 안내",
        body="창문을 닫고 외출을 삼가세요.",
        buttons=(Button(name="자세히 보기", link="#{link}"),),
        recipients=Recipients(
            subscriber_ids=[seq * 1000 + i for i in range(size)],
            recipient_nos=[f"010{seq * 1000 + i:08d}" for i in range(size)],
            links=[f"https://allim.example/r/token-{seq}-{i}" for i in range(size)],
        ),
    )


@pytest.fixture
def captured() -> list[httpx.Request]:
    """The requests the mock receiver saw."""
    return []


def provider_answering(
    response: httpx.Response | Exception,
    requests: list[httpx.Request] | None = None,
    secret: str | None = None,
) -> tuple[WebhookProvider, httpx.AsyncClient]:
    def handler(request: httpx.Request) -> httpx.Response:
        if requests is not None:
            requests.append(request)
        if isinstance(response, Exception):
            raise response
        return response

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return WebhookProvider(client, URL, secret, clock=lambda: NOW), client


async def test_body_and_headers(captured: list[httpx.Request]) -> None:
    provider, client = provider_answering(httpx.Response(200), captured)
    async with client:
        await provider.send(make_batch(seq=7, size=2))
    (request,) = captured
    assert request.method == "POST"
    assert str(request.url) == URL
    assert request.headers["X-Idempotency-Key"] == f"{ALERT}:0:7"
    assert request.headers["Content-Type"] == "application/json"
    assert "X-Allim-Signature" not in request.headers  # no secret, no signature
    assert "X-Allim-Timestamp" not in request.headers
    assert orjson.loads(request.content) == {
        "batch_id": f"{ALERT}:0:7",
        "alert": {"id": str(ALERT), "category": "public"},
        "message": {
            "type": "ALIMTALK",
            "title": "태풍 대비 안내",
            "body": "창문을 닫고 외출을 삼가세요.",
            "buttons": [{"name": "자세히 보기", "link": "#{link}"}],
        },
        "recipients": [
            {
                "subscriber_id": 7000,
                "recipient_no": "01000007000",
                "link": "https://allim.example/r/token-7-0",
            },
            {
                "subscriber_id": 7001,
                "recipient_no": "01000007001",
                "link": "https://allim.example/r/token-7-1",
            },
        ],
    }


async def test_signature_covers_timestamp_and_raw_body(captured: list[httpx.Request]) -> None:
    secret = "webhook-shared-secret"
    provider, client = provider_answering(httpx.Response(204), captured, secret)
    async with client:
        await provider.send(make_batch())
    (request,) = captured
    assert request.headers["X-Allim-Timestamp"] == str(int(NOW))
    expected = hmac.new(
        secret.encode(), f"{int(NOW)}.".encode() + request.content, "sha256"
    ).hexdigest()
    assert request.headers["X-Allim-Signature"] == f"sha256={expected}"
    # another body, or another time, gives another signature
    assert signature(secret, str(int(NOW)), request.content + b" ") != f"sha256={expected}"
    assert signature(secret, str(int(NOW) + 1), request.content) != f"sha256={expected}"


@pytest.mark.parametrize("status", [200, 201, 202, 204])
async def test_any_2xx_delivers_every_recipient(status: int) -> None:
    provider, client = provider_answering(httpx.Response(status, text="whatever"))
    batch = make_batch(size=5)
    async with client:
        result = await provider.send(batch)
    assert result.batch_id == batch.batch_id
    assert result.subscriber_ids == batch.recipients.subscriber_ids
    assert result.result_codes == [DELIVERED] * len(batch.recipients)


async def test_429_with_seconds_is_throttled() -> None:
    provider, client = provider_answering(httpx.Response(429, headers={"Retry-After": "7"}))
    async with client:
        with pytest.raises(ThrottledError) as caught:
            await provider.send(make_batch())
    assert caught.value.retry_after == 7.0


async def test_429_with_http_date_is_throttled() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    provider, client = provider_answering(httpx.Response(429, headers={"Retry-After": when}))
    async with client:
        with pytest.raises(ThrottledError) as caught:
            await provider.send(make_batch())
    assert caught.value.retry_after is not None
    assert 28.0 <= caught.value.retry_after <= 30.0


async def test_429_without_retry_after() -> None:
    provider, client = provider_answering(httpx.Response(429))
    async with client:
        with pytest.raises(ThrottledError) as caught:
            await provider.send(make_batch())
    assert caught.value.retry_after is None


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
async def test_server_errors_are_retryable(status: int) -> None:
    provider, client = provider_answering(httpx.Response(status, headers={"Retry-After": "2"}))
    async with client:
        with pytest.raises(RetryableProviderError) as caught:
            await provider.send(make_batch())
    assert not isinstance(caught.value, ThrottledError)
    assert caught.value.retry_after == 2.0


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("reset"),
        httpx.PoolTimeout("busy"),
    ],
)
async def test_transport_failures_are_retryable(error: Exception) -> None:
    provider, client = provider_answering(error)
    async with client:
        with pytest.raises(RetryableProviderError, match="webhook request failed"):
            await provider.send(make_batch())


@pytest.mark.parametrize("status", [301, 400, 401, 403, 404, 410, 422])
async def test_other_answers_are_permanent(status: int) -> None:
    provider, client = provider_answering(httpx.Response(status, text="bad field 'title'"))
    async with client:
        with pytest.raises(PermanentProviderError) as caught:
            await provider.send(make_batch())
    assert caught.value.status == status
    assert "bad field 'title'" in str(caught.value)


async def test_lookup_knows_nothing() -> None:
    provider, client = provider_answering(httpx.Response(200))
    async with client:
        assert await provider.lookup(f"{ALERT}:0:0") is None


async def test_bad_configuration_is_refused() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(ValueError, match="not an http"):
            WebhookProvider(client, "ftp://receiver.example/")
        with pytest.raises(ValueError, match="secret is empty"):
            WebhookProvider(client, URL, "  ")


async def test_provider_of_the_settings_signs_with_the_configured_secret() -> None:
    settings = BroadcasterSettings(
        environment="development",
        broadcaster_webhook_url=URL,
        broadcaster_webhook_secret="configured-webhook-secret",
    )
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        await webhook_provider(settings, client).send(make_batch())
        unsigned = BroadcasterSettings(environment="development", broadcaster_webhook_url=URL)
        await webhook_provider(unsigned, client).send(make_batch())
    signed, plain = requests
    assert signed.headers["X-Allim-Signature"] == signature(
        "configured-webhook-secret", signed.headers["X-Allim-Timestamp"], signed.content
    )
    assert "X-Allim-Signature" not in plain.headers
