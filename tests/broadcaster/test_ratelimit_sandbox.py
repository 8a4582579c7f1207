"""Three limiters (three engines, as three sender processes) posting to the real sandbox.

The sandbox refuses past its messages/s with 429; the limiters share one budget through
PostgreSQL. Told the sandbox's rate, together they stay under it; told too high a rate, the
429s pause and slow all of them down.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from broadcaster.errors import ThrottledError
from broadcaster.providers.base import OutgoingBatch, Recipients
from broadcaster.providers.kakao import KakaoOptions, KakaoProvider
from broadcaster.ratelimit import GlobalRateLimiter, RateLimits
from common.db import create_engine
from sandbox.config import SandboxSettings
from sandbox.main import create_app
from sandbox.server import serving

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APPKEY = "ratelimit-appkey"
SECRET = "ratelimit-sandbox-secret-0123"
BATCH = 200


@pytest.fixture
async def engines(database_url: str) -> AsyncIterator[list[AsyncEngine]]:
    """Three engines, as three sender processes would have."""
    made = [create_engine(database_url, pool_size=2) for _ in range(3)]
    yield made
    for engine in made:
        await engine.dispose()


@pytest.fixture
async def sandbox_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A sandbox limited to 4,000 messages/s, served over real HTTP; its 429s carry
    Retry-After in seconds, or as an HTTP date."""
    settings = SandboxSettings(
        environment="test",
        tracking_secret=SecretStr("test-tracking-secret-0123456789"),
        sandbox_appkey=APPKEY,
        sandbox_secret_key=SecretStr(SECRET),
        sandbox_profile="off",
        sandbox_messages_per_second=4000,
        sandbox_burst_seconds=1.0,
        sandbox_retry_after_http_date=getattr(request, "param", False),
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
    """One 'process': a limiter on its own engine, three requests in flight."""

    def __init__(self, engine: AsyncEngine, limits: RateLimits, url: str, index: int) -> None:
        self.limiter = GlobalRateLimiter(engine, limits)
        self.url = url
        self.index = index
        self.accepted = 0
        self.throttled = 0

    async def run(self, alert: uuid.UUID, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        stop = loop.time() + seconds
        async with httpx.AsyncClient(timeout=5.0) as client:
            kakao = provider(client, self.url)
            seq = iter(range(10**6))

            async def worker() -> None:
                while loop.time() < stop:
                    n = next(seq)
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
                    await self.limiter.acquire(BATCH)
                    try:
                        await kakao.send(batch)
                    except ThrottledError as exc:
                        self.throttled += 1
                        await self.limiter.throttled(exc.retry_after)
                    else:
                        self.accepted += BATCH
                        await self.limiter.succeeded()

            await asyncio.gather(*(worker() for _ in range(3)))


async def run_senders(
    engines: list[AsyncEngine], limits: RateLimits, url: str, seconds: float
) -> list[Sender]:
    senders = [Sender(engine, limits, url, i) for i, engine in enumerate(engines)]
    alert = uuid.uuid4()
    await asyncio.gather(*(s.run(alert, seconds) for s in senders))
    return senders


async def test_three_senders_told_the_rate_stay_under_it(
    engines: list[AsyncEngine], sandbox_url: str
) -> None:
    limits = RateLimits(messages_per_second=4000, bucket=f"sbx-{uuid.uuid4().hex[:8]}")
    seconds = 4.0
    senders = await run_senders(engines, limits, sandbox_url, seconds)
    accepted = sum(s.accepted for s in senders)
    assert sum(s.throttled for s in senders) == 0
    # the sandbox's own burst (1 s) is never needed, and the budget is used
    assert accepted >= 0.85 * 4000 * seconds
    assert all(s.accepted > 0 for s in senders)


@pytest.mark.parametrize(
    "sandbox_url",
    [False, True],
    ids=["retry-after-seconds", "retry-after-http-date"],
    indirect=True,
)
async def test_senders_told_too_high_a_rate_are_slowed_by_429s(
    engines: list[AsyncEngine], sandbox_url: str
) -> None:
    limits = RateLimits(
        messages_per_second=12_000,
        bucket=f"sbx-{uuid.uuid4().hex[:8]}",
        recovery_per_second=0.02,
        cooldown_seconds=0.5,
    )
    senders = await run_senders(engines, limits, sandbox_url, 5.0)
    requests = sum(s.accepted // BATCH + s.throttled for s in senders)
    throttled = sum(s.throttled for s in senders)
    assert throttled > 0
    # the shared cut brought everyone below the configured rate, so 429s stayed rare
    rates = [s.limiter.messages_rate for s in senders]
    assert all(rate is not None and rate < 12_000 for rate in rates)
    assert throttled < 0.25 * requests
