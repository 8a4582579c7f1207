"""GlobalRateLimiter against the real PostgreSQL: a shared budget, pauses, cuts and recovery."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from broadcaster.backoff import parse_retry_after
from broadcaster.config import BroadcasterSettings
from broadcaster.ratelimit import GlobalRateLimiter, RateLimits, database_unavailable
from common.db import create_engine

pytestmark = pytest.mark.integration


def bucket_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def engines(database_url: str) -> AsyncIterator[list[AsyncEngine]]:
    """Three engines, as three sender processes would have."""
    made = [create_engine(database_url, pool_size=2) for _ in range(3)]
    yield made
    for engine in made:
        await engine.dispose()


async def row(engine: AsyncEngine, name: str) -> dict[str, object]:
    async with engine.connect() as conn:
        result = await conn.execute(
            text(
                "SELECT tokens, rate, burst, paused_until, adjusted_at,"
                " paused_until - clock_timestamp() AS pause_left"
                " FROM rate_buckets WHERE name = :name"
            ),
            {"name": name},
        )
        return dict(result.one()._mapping)


async def drive(
    limiter: GlobalRateLimiter, size: int, workers: int, seconds: float, grants: list[float]
) -> None:
    """`workers` coroutines acquiring `size`-message requests for `seconds`, noting each grant."""
    loop = asyncio.get_running_loop()
    stop = loop.time() + seconds

    async def worker() -> None:
        while loop.time() < stop:
            await limiter.acquire(size)
            grants.append(loop.time())
            await limiter.succeeded()

    await asyncio.gather(*(worker() for _ in range(workers)))


async def test_three_processes_share_one_messages_budget(engines: list[AsyncEngine]) -> None:
    rate, size, seconds = 3000.0, 100, 3.0
    limits = RateLimits(messages_per_second=rate, bucket=bucket_name())
    limiters = [GlobalRateLimiter(engine, limits) for engine in engines]
    grants: list[float] = []
    start = asyncio.get_running_loop().time()
    await asyncio.gather(*(drive(limiter, size, 4, seconds, grants) for limiter in limiters))
    sent = [t - start for t in sorted(grants)]

    burst = rate * limits.burst_seconds
    # every prefix of the run stays within burst + rate * t (one lease of slack per process)
    slack = 3 * rate * limits.lease_seconds
    for index, moment in enumerate(sent):
        assert (index + 1) * size <= burst + slack + rate * moment + size
    # and the steady part is not far below the budget
    steady = [t for t in sent if 0.5 <= t < seconds - 0.2]
    achieved = len(steady) * size / (seconds - 0.7)
    assert 0.9 * rate <= achieved <= 1.05 * rate
    # every process got a share: the debt queues them fairly
    assert all(limiter.buckets[0].leases > 3 for limiter in limiters)


async def test_requests_budget_holds_for_small_requests(engines: list[AsyncEngine]) -> None:
    limits = RateLimits(
        messages_per_second=1_000_000.0, requests_per_second=40.0, bucket=bucket_name()
    )
    limiters = [GlobalRateLimiter(engine, limits) for engine in engines]
    grants: list[float] = []
    start = asyncio.get_running_loop().time()
    await asyncio.gather(*(drive(limiter, 1, 3, 2.5, grants) for limiter in limiters))
    steady = [t - start for t in grants if 0.5 <= t - start < 2.3]
    assert 0.85 * 40 <= len(steady) / 1.8 <= 1.1 * 40


async def test_unlimited_does_no_database_work() -> None:
    # an engine whose server does not exist: any query would fail
    engine = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none", pool_size=1)
    try:
        limiter = GlobalRateLimiter(engine, RateLimits())
        assert limiter.buckets == ()
        for _ in range(1000):
            await limiter.acquire(1000)
        await limiter.server_error()
        await limiter.succeeded()
        loop = asyncio.get_running_loop()
        await limiter.throttled(0.3)
        before = loop.time()
        await limiter.acquire(10)
        assert loop.time() - before >= 0.25  # a 429 still pauses this process
    finally:
        await engine.dispose()


async def test_429_pauses_every_process_and_halves_the_rate(engines: list[AsyncEngine]) -> None:
    limits = RateLimits(messages_per_second=10_000.0, bucket=bucket_name())
    first, second = (GlobalRateLimiter(engine, limits) for engine in engines[:2])
    await first.acquire(100)
    await second.acquire(100)

    await first.throttled(0.6)
    state = await row(engines[0], f"{limits.bucket}:messages")
    assert state["rate"] == pytest.approx(5_000.0)
    assert state["paused_until"] is not None

    # the other process learns of the pause at its next lease and waits it out
    loop = asyncio.get_running_loop()
    before = loop.time()
    for _ in range(20):
        await second.acquire(100)
    assert loop.time() - before >= 0.5
    assert second.messages_rate == pytest.approx(5_000.0)


async def test_429_with_an_http_date_pauses_until_then(engines: list[AsyncEngine]) -> None:

    limits = RateLimits(messages_per_second=10_000.0, bucket=bucket_name())
    limiter = GlobalRateLimiter(engines[0], limits)
    await limiter.acquire(10)
    header = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
    await limiter.throttled(parse_retry_after(header))
    state = await row(engines[0], f"{limits.bucket}:messages")
    pause_left = state["pause_left"]
    assert isinstance(pause_left, timedelta)
    # the HTTP date has whole seconds: between 2 and 3 s are left
    assert 1.9 <= pause_left.total_seconds() <= 3.1


async def test_cuts_in_one_cooldown_count_once(engines: list[AsyncEngine]) -> None:
    limits = RateLimits(messages_per_second=1000.0, bucket=bucket_name(), cooldown_seconds=5.0)
    limiters = [GlobalRateLimiter(engine, limits) for engine in engines]
    for limiter in limiters:
        await limiter.acquire(10)
    # every process sees the same storm of errors at once
    await asyncio.gather(*(limiter.server_error() for limiter in limiters))
    await asyncio.gather(*(limiter.server_error() for limiter in limiters))
    state = await row(engines[0], f"{limits.bucket}:messages")
    assert state["rate"] == pytest.approx(800.0)
    assert state["paused_until"] is None  # a 5xx slows down, it does not pause


async def test_rate_never_drops_below_the_floor(engines: list[AsyncEngine]) -> None:
    limits = RateLimits(
        messages_per_second=1000.0, bucket=bucket_name(), cooldown_seconds=0.0, floor=0.2
    )
    limiter = GlobalRateLimiter(engines[0], limits)
    await limiter.acquire(10)
    for _ in range(10):
        await limiter.throttled(0)
    state = await row(engines[0], f"{limits.bucket}:messages")
    assert state["rate"] == pytest.approx(200.0)


async def test_successes_recover_the_rate_additively(engines: list[AsyncEngine]) -> None:
    limits = RateLimits(
        messages_per_second=2000.0,
        bucket=bucket_name(),
        cooldown_seconds=0.2,
        recovery_per_second=0.5,
    )
    limiter = GlobalRateLimiter(engines[0], limits)
    await limiter.acquire(100)
    await limiter.throttled(0)
    await limiter.throttled(0)  # within the cooldown: one cut
    assert (await row(engines[0], f"{limits.bucket}:messages"))["rate"] == pytest.approx(1000.0)

    # without successes the rate stays cut
    await asyncio.sleep(0.3)
    await limiter.acquire(400)
    await limiter.acquire(400)
    assert limiter.messages_rate == pytest.approx(1000.0)

    # with successes it climbs back, by 50% of 2000/s per second, and stops at the configured rate
    rates = []
    loop = asyncio.get_running_loop()
    stop = loop.time() + 1.6
    while loop.time() < stop:
        await limiter.acquire(100)
        await limiter.succeeded()
        rates.append(limiter.messages_rate)
    assert rates == sorted(rates)
    assert rates[0] is not None and rates[0] < 1500.0
    assert rates[-1] == pytest.approx(2000.0)


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="unlimited"):
        RateLimits(messages_per_second=-1)
    with pytest.raises(ValueError, match="factors"):
        RateLimits(throttle_factor=1.5)
    with pytest.raises(ValueError, match="floor"):
        RateLimits(floor=0)
    with pytest.raises(ValueError, match="1 to 50 characters"):
        RateLimits(bucket="b" * 51)


def test_limits_from_settings() -> None:
    settings = BroadcasterSettings(
        environment="development",
        broadcaster_rate_messages_per_second=5000,
        broadcaster_rate_requests_per_second=20,
        broadcaster_rate_bucket="dealer-a",
        broadcaster_rate_cooldown_seconds=3,
    )
    limits = RateLimits.from_settings(settings)
    assert (limits.messages_per_second, limits.requests_per_second) == (5000, 20)
    assert (limits.bucket, limits.cooldown_seconds) == ("dealer-a", 3)
    assert RateLimits.from_settings(BroadcasterSettings(environment="development")) == RateLimits()


async def test_sends_are_paced_between_leases(engines: list[AsyncEngine]) -> None:
    # a lease is half a second of budget (1,000 messages): without local pacing its ten
    # requests of 100 would all go at once
    limits = RateLimits(messages_per_second=2000.0, bucket=bucket_name(), lease_seconds=0.5)
    limiter = GlobalRateLimiter(engines[0], limits)
    grants: list[float] = []
    await drive(limiter, 100, 4, 1.5, grants)
    grants.sort()
    assert limiter.buckets[0].leases <= 5
    for index, moment in enumerate(grants):
        in_window = sum(1 for t in grants[index:] if t < moment + 0.1)
        assert in_window * 100 <= 2000 * 0.1 + 100


async def test_database_away_is_waited_out_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    # nothing listens on port 1: every lease fails to connect
    engine = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none", pool_size=1)
    try:
        limiter = GlobalRateLimiter(engine, RateLimits(messages_per_second=1000.0))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(limiter.acquire(10), 0.8)
        assert "lease failed, retrying" in caplog.text
        # a 429 while the database is away still slows this process down, and does not raise
        await limiter.throttled(0.0)
        assert limiter.messages_rate == pytest.approx(500.0)
    finally:
        await engine.dispose()


async def test_only_outages_are_waited_out(engines: list[AsyncEngine]) -> None:
    assert database_unavailable(ConnectionRefusedError(111, "refused"))
    assert database_unavailable(asyncpg.ConnectionDoesNotExistError("closed"))
    assert database_unavailable(asyncpg.CannotConnectNowError("starting up"))
    assert not database_unavailable(ValueError("bad number"))
    with pytest.raises(DBAPIError) as caught:
        async with engines[0].connect() as conn:
            await conn.execute(text("SELECT no_such_column FROM rate_buckets"))
    # a wrong query is a bug to raise, not an outage to wait out
    assert not database_unavailable(caught.value)
