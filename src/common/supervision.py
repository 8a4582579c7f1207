"""One supervisor for every long-running task of a process.

A job is a coroutine function that runs until the process's `stopping` event is set. A
Kafka or PostgreSQL error (the broker or the database away for a while) is logged with its
traceback, backed off and the job started again; any other exception is a bug: it is
logged, every other job is told to stop, and the process exits non-zero. A job that returns
while the process still runs is a bug too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

import asyncpg
from aiokafka.errors import KafkaError

from common.waiting import wait_or_stop

logger = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]

# the broker or the database unreachable or refusing for a while (OSError covers a refused
# or reset connection and a timeout)
TRANSIENT: tuple[type[BaseException], ...] = (
    KafkaError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
)


def exponential(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds before restart number `attempt` (1-based): doubling from `base`, at most `cap`."""
    return float(min(cap, base * 2 ** (attempt - 1)))


async def supervise(
    jobs: Mapping[str, Job],
    stopping: asyncio.Event,
    *,
    backoff: Callable[[int], float] = exponential,
    clock: Callable[[], float] = time.monotonic,
    healthy_after: float = 60.0,
) -> int:
    """Run every job until `stopping`; 0 once all ended cleanly, 1 when one ended on a bug.

    A job that ran `healthy_after` seconds before a transient error backs off from the
    first delay again.
    """
    failed: list[str] = []
    async with asyncio.TaskGroup() as group:
        for name, job in jobs.items():
            group.create_task(
                _keep(name, job, stopping, failed, backoff, clock, healthy_after), name=name
            )
    return 1 if failed else 0


async def _keep(
    name: str,
    job: Job,
    stopping: asyncio.Event,
    failed: list[str],
    backoff: Callable[[int], float],
    clock: Callable[[], float],
    healthy_after: float,
) -> None:
    attempt = 0
    while not stopping.is_set():
        started = clock()
        try:
            await job()
        except TRANSIENT as exc:
            attempt = 1 if clock() - started >= healthy_after else attempt + 1
            delay = backoff(attempt)
            logger.warning(
                "%s failed (attempt %s); restarting in %.1f s: %r",
                name,
                attempt,
                delay,
                exc,
                exc_info=exc,
            )
            if await wait_or_stop(stopping, delay):
                return
            continue
        except Exception as exc:
            logger.error("%s failed on a bug; the process stops", name, exc_info=exc)
        else:
            if stopping.is_set():
                return
            logger.error("%s ended while the process still runs; the process stops", name)
        failed.append(name)
        stopping.set()
        return
