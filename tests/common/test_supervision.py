"""The supervisor retries the broker's and the database's errors with backoff, stops the
process with a non-zero status on a bug, and ends cleanly when told to stop."""

from __future__ import annotations

import asyncio
import itertools

import asyncpg
from aiokafka.errors import KafkaConnectionError

from common.supervision import exponential, supervise
from common.waiting import wait_or_stop


class Flaky:
    """A job that raises the given errors one per run, then stops the process."""

    def __init__(self, stopping: asyncio.Event, *errors: BaseException) -> None:
        self.stopping = stopping
        self.errors = list(errors)
        self.runs = 0

    async def __call__(self) -> None:
        self.runs += 1
        if self.errors:
            raise self.errors.pop(0)
        self.stopping.set()


async def test_broker_and_database_errors_are_retried_with_growing_backoff() -> None:
    stopping = asyncio.Event()
    job = Flaky(
        stopping,
        KafkaConnectionError(),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection lost"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        ConnectionRefusedError(),
    )
    attempts: list[int] = []

    def backoff(attempt: int) -> float:
        attempts.append(attempt)
        return 0.0

    assert await supervise({"flaky": job}, stopping, backoff=backoff) == 0
    assert job.runs == 5
    assert attempts == [1, 2, 3, 4]


async def test_a_job_that_ran_long_enough_backs_off_from_the_start_again() -> None:
    stopping = asyncio.Event()
    job = Flaky(stopping, KafkaConnectionError(), KafkaConnectionError())
    attempts: list[int] = []
    ticks = itertools.count(0, 100)  # every run lasts 100 s on this clock

    def backoff(attempt: int) -> float:
        attempts.append(attempt)
        return 0.0

    status = await supervise(
        {"flaky": job}, stopping, backoff=backoff, clock=lambda: next(ticks), healthy_after=60
    )
    assert status == 0
    assert attempts == [1, 1]


async def test_a_bug_stops_every_job_and_the_process_exits_non_zero() -> None:
    stopping = asyncio.Event()
    stopped_cleanly: list[str] = []
    steady_runs = asyncio.Event()

    async def buggy() -> None:
        await steady_runs.wait()
        raise ValueError("a bug")

    async def steady() -> None:
        steady_runs.set()
        await stopping.wait()
        stopped_cleanly.append("steady")

    assert await supervise({"buggy": buggy, "steady": steady}, stopping) == 1
    assert stopping.is_set()
    assert stopped_cleanly == ["steady"]


async def test_a_job_that_returns_while_the_process_runs_is_a_bug() -> None:
    stopping = asyncio.Event()

    async def quits() -> None:
        return

    assert await supervise({"quits": quits}, stopping) == 1


async def test_stopping_ends_every_job_cleanly_also_during_a_backoff() -> None:
    stopping = asyncio.Event()
    runs = 0
    failed_once = asyncio.Event()

    async def failing() -> None:
        nonlocal runs
        runs += 1
        failed_once.set()
        raise KafkaConnectionError()

    async def steady() -> None:
        await stopping.wait()

    supervisor = asyncio.create_task(
        supervise({"failing": failing, "steady": steady}, stopping, backoff=lambda _: 3600.0)
    )
    await failed_once.wait()  # the supervisor is in the job's hour-long backoff now
    stopping.set()
    assert await supervisor == 0
    assert runs == 1


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [exponential(n, 0.5, 3.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


async def test_wait_or_stop_says_whether_stopping_was_set() -> None:
    stopping = asyncio.Event()
    assert await wait_or_stop(stopping, 0.0) is False
    stopping.set()
    assert await wait_or_stop(stopping, 3600.0) is True
