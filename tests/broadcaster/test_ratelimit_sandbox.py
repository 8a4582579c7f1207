"""Three limiters (three stores, as three sender processes) posting to the real sandbox.

The sandbox refuses past its messages/s with 429; the limiters share one budget through
PostgreSQL. Told the sandbox's rate, together they stay under it; told too high a rate, the
429s pause and slow all of them down. The sandbox counts by its own clock, so the limiters
keep the real one here; each sender sends a fixed number of batches, and the tests count
answers, never time (test_ratelimit.py proves the rates themselves on a clock it drives).
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

from broadcaster.config import BroadcasterSettings
from broadcaster.errors import ThrottledError
from broadcaster.main import rate_limits
from broadcaster.providers.base import OutgoingBatch, Recipients
from broadcaster.providers.kakao import KakaoOptions, KakaoProvider
from broadcaster.ratelimit import GlobalRateLimiter, RateLimits
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
    """One 'process': a limiter on its own store, three requests in flight."""

    def __init__(self, store: Store, limits: RateLimits, url: str, index: int) -> None:
        self.limiter = GlobalRateLimiter(store, limits)
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
                            await kakao.send(batch)
                        except ThrottledError as exc:
                            self.throttled += 1
                            await self.limiter.throttled(exc.retry_after)
                        else:
                            self.accepted += BATCH
                            await self.limiter.succeeded()
                            break

            await asyncio.gather(*(worker() for _ in range(3)))


async def run_senders(
    stores: list[Store], limits: RateLimits, url: str, batches: int
) -> list[Sender]:
    """Three senders, each sending `batches` batches of `BATCH` to the sandbox."""
    senders = [Sender(store, limits, url, i) for i, store in enumerate(stores)]
    alert = uuid.uuid4()
    await asyncio.gather(*(s.run(alert, batches) for s in senders))
    return senders


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
    [False, True],
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
