"""Three limiters (three stores, as three sender processes) posting to the real sandbox.

The sandbox refuses past its messages/s with 429; the limiters share one budget through
PostgreSQL. Told the sandbox's rate, together they stay under it; told too high a rate, the
429s pause and slow all of them down; told nothing, they learn it together, and a sender
that starts later joins the learned rate; when the sandbox advertises its quota in RateLimit
headers, they follow it without a refusal. The sandbox counts by its own clock, so the
limiters keep the real one here; each sender sends a fixed number of batches, and the tests
count answers, never time (test_ratelimit.py proves the rates themselves on a clock it
drives).
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from broadcaster.buckets import Buckets
from broadcaster.config import BroadcasterSettings
from broadcaster.errors import ThrottledError
from broadcaster.main import rate_limits
from broadcaster.providers.base import OutgoingBatch, Recipients
from broadcaster.providers.kakao import KakaoOptions, KakaoProvider
from broadcaster.ratelimit import GlobalRateLimiter
from broadcaster.shared_bucket import RateLimits
from broadcaster.store import Store
from sandbox.config import SandboxSettings
from sandbox.main import create_app
from sandbox.server import serving

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APPKEY = "ratelimit-appkey"
SECRET = "ratelimit-sandbox-secret-0123"
BATCH = 200


def limits(**given: Any) -> RateLimits:
    """The configured defaults, with a bucket of the test's own and `given` changed."""
    defaults = rate_limits(BroadcasterSettings(environment="development"))
    return dataclasses.replace(defaults, **{"bucket": f"sbx-{uuid.uuid4().hex[:8]}", **given})


@pytest.fixture
async def sandbox_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A sandbox limited to 4,000 messages/s, served over real HTTP; its 429s carry
    Retry-After in seconds, or as an HTTP date; "headers" advertises the quota on every
    answer."""
    mode = getattr(request, "param", "seconds")
    settings = SandboxSettings(
        environment="test",
        tracking_secret=SecretStr("test-tracking-secret-0123456789"),
        sandbox_appkey=APPKEY,
        sandbox_secret_key=SecretStr(SECRET),
        sandbox_profile="off",
        sandbox_messages_per_second=4000,
        sandbox_burst_seconds=1.0,
        sandbox_retry_after_http_date=mode == "http-date",
        sandbox_ratelimit_headers=mode == "headers",
    )
    async with serving(create_app(settings)) as url:
        yield url


def provider(client: httpx.AsyncClient, url: str) -> KakaoProvider:
    path = "/v1/appkeys/{appkey}/messages"
    return KakaoProvider(
        client,
        KakaoOptions(url, path, path, APPKEY, SECRET, "bench-channel", "ALERT_V1", "보기"),
    )


class Sender:
    """One 'process': a limiter on its own store, three requests in flight."""

    def __init__(self, store: Store, limits: RateLimits, url: str, index: int) -> None:
        self.limiter = GlobalRateLimiter(Buckets(store.pool), limits)
        self.url = url
        self.index = index
        self.accepted = 0
        self.throttled = 0

    async def run(self, alert: uuid.UUID, batches: int) -> None:
        """Send `batches` batches of `BATCH`, each until it is accepted."""
        async with httpx.AsyncClient(timeout=5.0) as client:
            kakao = provider(client, self.url)
            seq = iter(range(batches))

            async def worker() -> None:
                for n in seq:
                    first = (self.index * 10**6 + n) * BATCH
                    batch = OutgoingBatch(
                        f"{alert}:{self.index}:{n}",
                        alert,
                        "public",
                        "ALIMTALK",
                        "안내",
                        "rate limit test",
                        (),
                        Recipients(
                            list(range(first, first + BATCH)),
                            [f"010{i:08d}" for i in range(first, first + BATCH)],
                            [f"http://127.0.0.1:9/r/{i}" for i in range(first, first + BATCH)],
                        ),
                    )
                    while True:
                        await self.limiter.acquire(BATCH)
                        try:
                            result = await kakao.send(batch)
                        except ThrottledError as exc:
                            self.throttled += 1
                            await self.limiter.throttled(exc.retry_after, exc.quotas)
                        else:
                            self.accepted += BATCH
                            await self.limiter.succeeded(result.quotas)
                            break

            await asyncio.gather(*(worker() for _ in range(3)))


async def run_senders(
    stores: list[Store], limits: RateLimits, url: str, batches: int
) -> list[Sender]:
    """Three senders, each sending `batches` batches of `BATCH` to the sandbox."""
    senders = [Sender(store, limits, url, i) for i, store in enumerate(stores)]
    await send(senders, batches)
    return senders


async def send(senders: list[Sender], batches: int) -> None:
    """Each of `senders` sends `batches` batches of `BATCH` of one new alert to the sandbox."""
    alert = uuid.uuid4()
    await asyncio.gather(*(s.run(alert, batches) for s in senders))


async def learned_rate(store: Store, limits: RateLimits) -> float:
    """The messages/s rate in the shared row."""
    rate = await store.pool.fetchval(
        "SELECT rate FROM rate_buckets WHERE name = $1", f"{limits.bucket}:messages"
    )
    assert isinstance(rate, float)
    return rate


async def test_three_senders_told_the_rate_stay_under_it(
    stores: list[Store], sandbox_url: str
) -> None:
    # 3 x 20 x 200 = 12,000 messages: three times the sandbox's burst, so senders that did
    # not share one budget (3 x 4,000/s) would be refused
    senders = await run_senders(stores, limits(messages_per_second=4000), sandbox_url, 20)
    assert [s.throttled for s in senders] == [0, 0, 0]
    assert [s.accepted for s in senders] == [20 * BATCH] * 3


@pytest.mark.parametrize(
    "sandbox_url",
    ["seconds", "http-date"],
    ids=["retry-after-seconds", "retry-after-http-date"],
    indirect=True,
)
async def test_senders_told_too_high_a_rate_are_slowed_by_429s(
    stores: list[Store], sandbox_url: str
) -> None:
    too_high = limits(messages_per_second=12_000, recovery_per_second=0.02, cooldown_seconds=0.5)
    senders = await run_senders(stores, too_high, sandbox_url, 30)
    assert [s.accepted for s in senders] == [30 * BATCH] * 3
    requests = sum(s.accepted // BATCH + s.throttled for s in senders)
    throttled = sum(s.throttled for s in senders)
    assert throttled > 0
    # the shared cut brought everyone below the configured rate, so 429s stayed rare
    rates = [s.limiter.messages_rate for s in senders]
    assert all(rate is not None and rate < 12_000 for rate in rates)
    assert throttled < 0.25 * requests


async def test_senders_told_no_rate_learn_it_and_then_are_rarely_refused(
    stores: list[Store], sandbox_url: str
) -> None:
    learning = limits(learn_start=500.0)
    senders = [Sender(store, learning, sandbox_url, i) for i, store in enumerate(stores)]
    # 3 x 60 x 200 = 36,000 messages: 9 s at the sandbox's rate, past slow start
    await send(senders, 60)
    learned = await learned_rate(stores[0], learning)
    refused = sum(s.throttled for s in senders)
    # slow start went past the sandbox's rate: it was refused, and the cut brought it near
    assert refused > 0
    assert 2000.0 <= learned <= 6000.0

    # held: the next 36,000 messages are refused at most 2% of the time
    await send(senders, 60)
    assert [s.accepted for s in senders] == [2 * 60 * BATCH] * 3
    later = sum(s.throttled for s in senders) - refused
    assert later <= 0.02 * (3 * 60 + later)


async def test_a_sender_that_starts_later_joins_the_learned_rate(
    stores: list[Store], sandbox_url: str
) -> None:
    learning = limits(learn_start=500.0)
    early = [Sender(store, learning, sandbox_url, i) for i, store in enumerate(stores[:2])]
    await send(early, 60)
    learned = await learned_rate(stores[0], learning)
    assert learned > 1000.0

    # the third process does not probe from the start rate on its own: its first lease is
    # the rate the others learned, past slow start
    late = Sender(stores[2], learning, sandbox_url, 2)
    await late.limiter.acquire(BATCH)
    (bucket,) = late.limiter.buckets
    assert bucket.rate == pytest.approx(learned, rel=0.05)
    assert not bucket.probing


@pytest.mark.parametrize("sandbox_url", ["headers"], indirect=True)
async def test_senders_follow_an_advertised_quota_without_a_refusal(
    stores: list[Store], sandbox_url: str
) -> None:
    learning = limits(learn_start=500.0)
    senders = await run_senders(stores, learning, sandbox_url, 40)
    assert [s.accepted for s in senders] == [40 * BATCH] * 3
    assert [s.throttled for s in senders] == [0, 0, 0]
    # the shared rate is the sandbox's own, taken from its RateLimit-Policy
    assert await learned_rate(stores[0], learning) == 4000.0
    assert all(not s.limiter.buckets[0].learning for s in senders)
