"""GlobalRateLimiter against the real PostgreSQL: a shared budget, pauses, cuts and recovery.

Every limiter here runs on one `ManualClock`, which also tells the database what time it is:
the tests move time themselves, only when every "process" waits on the clock, and assert
what was granted by then, not how long it took.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

import asyncpg
import pytest
from tests.clocks import ManualClock

from broadcaster.backoff import parse_retry_after
from broadcaster.buckets import Buckets
from broadcaster.config import BroadcasterSettings
from broadcaster.main import rate_limits
from broadcaster.quotas import Quota
from broadcaster.ratelimit import GlobalRateLimiter
from broadcaster.shared_bucket import RateLimits, database_unavailable
from broadcaster.store import Store

pytestmark = pytest.mark.integration

# a server nobody listens on: any statement would fail to connect
NOWHERE = "postgresql://nobody@127.0.0.1:1/none"


def limits(**given: Any) -> RateLimits:
    """The configured defaults, with a bucket of the test's own and `given` changed."""
    defaults = rate_limits(BroadcasterSettings(environment="development"))
    return dataclasses.replace(defaults, **{"bucket": f"test-{uuid.uuid4().hex[:12]}", **given})


@pytest.fixture
async def nowhere() -> AsyncIterator[Store]:
    """A store whose server does not exist (its pool connects only when asked)."""
    store = Store(await asyncpg.create_pool(NOWHERE, min_size=0, max_size=1))
    yield store
    await store.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


async def row(store: Store, name: str, clock: ManualClock) -> asyncpg.Record:
    record = await store.pool.fetchrow(
        "SELECT tokens, rate, burst, paused_until, adjusted_at,"
        " paused_until - $2::timestamptz AS pause_left FROM rate_buckets WHERE name = $1",
        name,
        clock.shared_time(),
    )
    assert record is not None
    return record


async def run_on(clock: ManualClock, processes: Sequence[Sequence[Awaitable[None]]]) -> None:
    """Run every process's tasks to their end, moving the clock to the next wake-up whenever
    each process still running waits on it (its other tasks queue behind the one asleep)."""
    running = [[asyncio.ensure_future(task) for task in tasks] for tasks in processes]
    while True:
        active = sum(1 for tasks in running if not all(t.done() for t in tasks))
        if not active:
            break
        pending = [t for tasks in running for t in tasks if not t.done()]
        asleep = asyncio.create_task(clock.until_sleeping(active))
        await asyncio.wait([asleep, *pending], return_when=asyncio.FIRST_COMPLETED)
        if asleep.done():
            clock.advance_to_next()
        else:
            asleep.cancel()
    for tasks in running:
        for task in tasks:
            task.result()


async def driven(clock: ManualClock, *processes: Awaitable[None]) -> None:
    """Run each of `processes` (one task each) to its end on the clock, as `run_on` does."""
    await run_on(clock, [[process] for process in processes])


async def requesting(
    limiter: GlobalRateLimiter, clock: ManualClock, size: int, until: float, grants: list[float]
) -> None:
    """Acquire `size`-message requests until the clock reads `until`, noting each grant."""
    while clock.now() < until:
        await limiter.acquire(size)
        grants.append(clock.now())
        await limiter.succeeded()


async def test_three_processes_share_one_messages_budget(
    stores: list[Store], clock: ManualClock
) -> None:
    rate, size, seconds = 3000.0, 100, 3.0
    shared = limits(messages_per_second=rate)
    limiters = [GlobalRateLimiter(Buckets(store.pool), shared, clock) for store in stores]
    grants: list[float] = []
    await run_on(
        clock,
        [[requesting(lim, clock, size, seconds, grants) for _ in range(4)] for lim in limiters],
    )
    grants.sort()

    burst = rate * shared.burst_seconds
    # every prefix of the run stays within burst + rate * t (one lease of slack per process)
    slack = 3 * rate * shared.lease_seconds
    for index, moment in enumerate(grants):
        assert (index + 1) * size <= burst + slack + rate * moment + size
    # and the budget is used: all but a lease's worth of it was granted by the end
    granted = sum(1 for t in grants if t < seconds) * size
    assert granted >= rate * seconds - rate * shared.lease_seconds
    # every process got a share: the debt queues them fairly
    leases = [limiter.buckets[0].leases for limiter in limiters]
    assert min(leases) >= 0.5 * max(leases)


async def test_requests_budget_holds_for_small_requests(
    stores: list[Store], clock: ManualClock
) -> None:
    shared = limits(messages_per_second=1_000_000.0, requests_per_second=40.0)
    limiters = [GlobalRateLimiter(Buckets(store.pool), shared, clock) for store in stores]
    grants: list[float] = []
    await driven(clock, *(requesting(lim, clock, 1, 2.5, grants) for lim in limiters))

    granted = sum(1 for t in grants if t < 2.5)
    burst = 40 * shared.burst_seconds + 3  # and one request a process leases ahead
    assert 40 * 2.5 - 4 <= granted <= burst + 40 * 2.5


async def test_unlimited_does_no_database_work(nowhere: Store, clock: ManualClock) -> None:
    limiter = GlobalRateLimiter(Buckets(nowhere.pool), limits(learn=False), clock)
    assert limiter.buckets == ()
    for _ in range(1000):
        await limiter.acquire(1000)
    await limiter.server_error()
    await limiter.succeeded()
    assert clock.deadlines == []

    # a 429 still pauses this process
    await limiter.throttled(0.3)
    acquiring = asyncio.create_task(limiter.acquire(10))
    await clock.until_sleeping()
    assert clock.deadlines == [0.3]
    clock.advance(0.3)
    await acquiring


async def test_429_pauses_every_process_and_halves_the_rate(
    stores: list[Store], clock: ManualClock
) -> None:
    shared = limits(messages_per_second=10_000.0)
    first, second = (GlobalRateLimiter(Buckets(store.pool), shared, clock) for store in stores[:2])
    await driven(clock, first.acquire(100), second.acquire(100))

    await first.throttled(0.6)
    paused_at = clock.now()
    state = await row(stores[0], f"{shared.bucket}:messages", clock)
    assert state["rate"] == pytest.approx(5_000.0)
    assert state["pause_left"] == timedelta(seconds=0.6)

    # the other process learns of the pause at its next lease and waits it out
    async def twenty() -> None:
        for _ in range(20):
            await second.acquire(100)

    await driven(clock, twenty())
    assert clock.now() >= paused_at + 0.6
    assert second.messages_rate == pytest.approx(5_000.0)


async def test_429_with_an_http_date_pauses_until_then(
    stores: list[Store], clock: ManualClock
) -> None:
    shared = limits(messages_per_second=10_000.0)
    limiter = GlobalRateLimiter(Buckets(stores[0].pool), shared, clock)
    await limiter.acquire(10)
    header = format_datetime(clock.shared_time() + timedelta(seconds=3), usegmt=True)
    await limiter.throttled(parse_retry_after(header, clock.shared_time()))
    state = await row(stores[0], f"{shared.bucket}:messages", clock)
    assert state["pause_left"] == timedelta(seconds=3)


async def test_cuts_in_one_cooldown_count_once(stores: list[Store], clock: ManualClock) -> None:
    shared = limits(messages_per_second=1000.0, cooldown_seconds=5.0)
    limiters = [GlobalRateLimiter(Buckets(store.pool), shared, clock) for store in stores]
    await driven(clock, *(limiter.acquire(10) for limiter in limiters))
    # every process sees the same storm of errors at once
    await asyncio.gather(*(limiter.server_error() for limiter in limiters))
    clock.advance(4.9)
    await asyncio.gather(*(limiter.server_error() for limiter in limiters))
    state = await row(stores[0], f"{shared.bucket}:messages", clock)
    assert state["rate"] == pytest.approx(800.0)
    assert state["paused_until"] is None  # a 5xx slows down, it does not pause

    clock.advance(0.1)  # the cooldown is over: the next error cuts again
    await limiters[0].server_error()
    state = await row(stores[0], f"{shared.bucket}:messages", clock)
    assert state["rate"] == pytest.approx(640.0)


async def test_rate_never_drops_below_the_floor(stores: list[Store], clock: ManualClock) -> None:
    shared = limits(messages_per_second=1000.0, cooldown_seconds=0.0, floor=0.2)
    limiter = GlobalRateLimiter(Buckets(stores[0].pool), shared, clock)
    await limiter.acquire(10)
    for _ in range(10):
        await limiter.throttled(0)
    state = await row(stores[0], f"{shared.bucket}:messages", clock)
    assert state["rate"] == pytest.approx(200.0)


async def test_successes_recover_the_rate_additively(
    stores: list[Store], clock: ManualClock
) -> None:
    shared = limits(messages_per_second=2000.0, cooldown_seconds=0.2, recovery_per_second=0.5)
    limiter = GlobalRateLimiter(Buckets(stores[0].pool), shared, clock)
    await limiter.acquire(100)
    await limiter.throttled(0)
    await limiter.throttled(0)  # within the cooldown: one cut
    assert (await row(stores[0], f"{shared.bucket}:messages", clock))["rate"] == 1000.0

    # without successes the rate stays cut
    clock.advance(0.3)

    async def without_successes() -> None:
        await limiter.acquire(400)
        await limiter.acquire(400)

    await driven(clock, without_successes())
    assert limiter.messages_rate == pytest.approx(1000.0)

    # with successes it climbs back, by 50% of 2000/s per second, and stops at the configured rate
    rates: list[float] = []

    async def with_successes() -> None:
        started = clock.now()
        while clock.now() < started + 1.6:
            await limiter.acquire(100)
            await limiter.succeeded()
            rates.append(limiter.buckets[0].rate)

    await driven(clock, with_successes())
    assert rates == sorted(rates)
    assert rates[0] < 1500.0
    assert rates[-1] == pytest.approx(2000.0)


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="not configured"):
        limits(messages_per_second=-1)
    with pytest.raises(ValueError, match="positive start"):
        limits(learn_start=0)
    with pytest.raises(ValueError, match="factors"):
        limits(learn_factor=0)
    with pytest.raises(ValueError, match="factors"):
        limits(throttle_factor=1.5)
    with pytest.raises(ValueError, match="floor"):
        limits(floor=0)
    with pytest.raises(ValueError, match="1 to 50 characters"):
        limits(bucket="b" * 51)


def test_limits_from_settings() -> None:
    settings = BroadcasterSettings(
        environment="development",
        broadcaster_rate_messages_per_second=5000,
        broadcaster_rate_requests_per_second=20,
        broadcaster_rate_bucket="dealer-a",
        broadcaster_rate_cooldown_seconds=3,
    )
    configured = rate_limits(settings)
    assert (configured.messages_per_second, configured.requests_per_second) == (5000, 20)
    assert (configured.bucket, configured.cooldown_seconds) == ("dealer-a", 3)
    # unset: learned from 1,000/s, 2% added a second; leases and burst of 0.1 s, 10% of a
    # configured rate recovered per second
    assert rate_limits(BroadcasterSettings(environment="development")) == RateLimits(
        messages_per_second=0.0,
        requests_per_second=0.0,
        bucket="provider",
        lease_seconds=0.1,
        burst_seconds=0.1,
        recovery_per_second=0.1,
        cooldown_seconds=2.0,
        learn=True,
        learn_start=1000.0,
        learn_increase=0.02,
    )
    unlimited = BroadcasterSettings(environment="development", broadcaster_rate_learn=False)
    assert not rate_limits(unlimited).learn


async def test_sends_are_paced_between_leases(stores: list[Store], clock: ManualClock) -> None:
    # a lease is half a second of budget (1,000 messages): without local pacing its ten
    # requests of 100 would all go at once
    shared = limits(messages_per_second=2000.0, lease_seconds=0.5)
    limiter = GlobalRateLimiter(Buckets(stores[0].pool), shared, clock)
    grants: list[float] = []
    await run_on(clock, [[requesting(limiter, clock, 100, 1.5, grants) for _ in range(4)]])
    grants.sort()
    assert limiter.buckets[0].leases <= 5
    for index, moment in enumerate(grants):
        in_window = sum(1 for t in grants[index:] if t < moment + 0.1)
        assert in_window * 100 <= 2000 * 0.1 + 100


async def test_database_away_is_waited_out_not_raised(
    nowhere: Store, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = GlobalRateLimiter(Buckets(nowhere.pool), limits(messages_per_second=1000.0), clock)
    acquiring = asyncio.create_task(limiter.acquire(10))
    for attempt in range(3):
        await clock.until_sleeping()
        assert caplog.text.count("lease failed, retrying") == attempt + 1
        clock.advance_to_next()
    assert not acquiring.done()  # asleep on the clock before its fourth attempt
    acquiring.cancel()
    # a 429 while the database is away still slows this process down, and does not raise
    await limiter.throttled(0.0)
    assert limiter.messages_rate == pytest.approx(500.0)


async def test_only_outages_are_waited_out(stores: list[Store]) -> None:
    assert database_unavailable(ConnectionRefusedError(111, "refused"))
    assert database_unavailable(asyncpg.ConnectionDoesNotExistError("closed"))
    assert database_unavailable(asyncpg.CannotConnectNowError("starting up"))
    assert database_unavailable(asyncpg.AdminShutdownError("restarting"))
    assert not database_unavailable(ValueError("bad number"))
    with pytest.raises(asyncpg.PostgresError) as caught:
        await stores[0].pool.execute("SELECT no_such_column FROM rate_buckets")
    # a wrong query is a bug to raise, not an outage to wait out
    assert not database_unavailable(caught.value)


# -- a rate nobody configured: learned, or advertised by the dealer ------------------------


async def learn_for(limiter: GlobalRateLimiter, clock: ManualClock, seconds: float) -> None:
    """Requests of 100 messages, as fast as the budget allows, each one a success."""
    until = clock.now() + seconds

    async def sending() -> None:
        while clock.now() < until:
            await limiter.acquire(100)
            await limiter.succeeded()

    await driven(clock, sending())


async def test_a_learned_rate_doubles_until_the_first_429_then_grows_additively(
    stores: list[Store], clock: ManualClock
) -> None:
    shared = limits(learn_start=1000.0, cooldown_seconds=1.0)
    limiter = GlobalRateLimiter(Buckets(stores[0].pool), shared, clock)
    (bucket,) = limiter.buckets
    assert bucket.learning and bucket.ceiling is None
    await learn_for(limiter, clock, 3.0)
    # slow start: about 1,000 * 2^3 after 3 s (growth comes in steps, a lease apart)
    assert bucket.probing
    assert 6000.0 <= bucket.rate <= 8000.0

    # the first 429 halves it and ends slow start, for every process
    probed = bucket.rate
    await limiter.throttled(0.0)
    state = await row(stores[0], f"{shared.bucket}:messages", clock)
    assert state["rate"] == pytest.approx(probed / 2)
    await learn_for(limiter, clock, 0.5)  # within the cool-down: no growth
    assert not bucket.probing
    assert bucket.rate == pytest.approx(probed / 2)

    # then it grows by 2% of itself a second
    await learn_for(limiter, clock, 5.0)
    assert probed / 2 * 1.08 <= bucket.rate <= probed / 2 * 1.11
    # and each later 429 cuts it by a quarter only
    grown = bucket.rate
    await limiter.throttled(0.0)
    state = await row(stores[0], f"{shared.bucket}:messages", clock)
    assert state["rate"] == pytest.approx(grown * 0.75)


async def test_processes_share_one_learned_rate(stores: list[Store], clock: ManualClock) -> None:
    shared = limits(learn_start=1000.0)
    first = GlobalRateLimiter(Buckets(stores[0].pool), shared, clock)
    await learn_for(first, clock, 2.0)
    await first.throttled(0.0)
    learned = (await row(stores[0], f"{shared.bucket}:messages", clock))["rate"]
    assert learned > 1000.0

    # a process that starts now begins at the learned rate, past slow start: it does not
    # probe on its own
    second = GlobalRateLimiter(Buckets(stores[1].pool), shared, clock)
    await driven(clock, second.acquire(100))
    assert second.messages_rate == pytest.approx(learned)
    assert not second.buckets[0].probing

    # its 429 is everyone's: the first process leases at the cut rate
    clock.advance(shared.cooldown_seconds)
    await second.throttled(0.0)

    async def more() -> None:
        for _ in range(20):
            await first.acquire(100)

    await driven(clock, more())
    assert first.messages_rate == pytest.approx(learned * shared.learn_factor)


async def test_a_learned_rate_nobody_uses_up_does_not_grow(
    stores: list[Store], clock: ManualClock
) -> None:
    limiter = GlobalRateLimiter(Buckets(stores[0].pool), limits(learn_start=1000.0), clock)

    async def trickle() -> None:
        # 100 messages a second against a budget of 1,000: never held back
        for _ in range(10):
            await limiter.acquire(100)
            await limiter.succeeded()
            await clock.sleep(1.0)

    await driven(clock, trickle())
    assert limiter.messages_rate == pytest.approx(1000.0)


async def test_an_advertised_quota_is_followed_at_once_below_the_configured_rate(
    stores: list[Store], clock: ManualClock
) -> None:
    shared = limits(messages_per_second=10_000.0)
    limiter = GlobalRateLimiter(Buckets(stores[0].pool), shared, clock)
    await driven(clock, limiter.acquire(100))
    await limiter.succeeded([Quota("messages", "messages", 5000.0)])
    name = f"{shared.bucket}:messages"
    assert (await row(stores[0], name, clock))["rate"] == pytest.approx(5000.0)

    grants: list[float] = []
    await run_on(clock, [[requesting(limiter, clock, 100, 3.0, grants) for _ in range(4)]])
    # the rate stays what the dealer said: successes do not raise it past that
    assert limiter.messages_rate == pytest.approx(5000.0)
    granted = sum(1 for t in grants if 1.0 <= t < 3.0) * 100
    assert 2 * 5000 - 200 <= granted <= 2 * 5000 + 200

    # an advertised rate above the configured one leaves the configured ceiling
    other = GlobalRateLimiter(Buckets(stores[1].pool), limits(messages_per_second=2000.0), clock)
    await other.succeeded([Quota("messages", "messages", 20_000.0)])
    assert other.buckets[0].ceiling == 2000.0


async def test_a_quota_in_a_unit_without_a_bucket_makes_one_even_unlimited(
    stores: list[Store], clock: ManualClock
) -> None:
    shared = limits(learn=False)
    limiter = GlobalRateLimiter(Buckets(stores[0].pool), shared, clock)
    assert limiter.buckets == ()
    await limiter.succeeded([Quota("requests", "requests", 10.0)])
    (bucket,) = limiter.buckets
    assert bucket.name == f"{shared.bucket}:requests"
    grants: list[float] = []
    await driven(clock, requesting(limiter, clock, 1000, 2.0, grants))
    assert 19 <= len(grants) <= 22  # 10 requests a second, and a burst of one

    # a quota used up: everyone waits until the dealer says it is restored
    await limiter.succeeded([Quota("requests", "requests", 10.0, remaining=0.0, reset=3.0)])
    state = await row(stores[0], bucket.name, clock)
    assert state["pause_left"] == timedelta(seconds=3)
