"""Fixtures of the tests that run allim's services as child processes on the session's Kafka
and PostgreSQL: the sandbox provider (session-wide), and `allim broadcaster` processes with
their environment. The broadcaster, contract and console system tests import them from here;
the classes they hand out live in `tests/broadcaster/children.py`, for the tests to type them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.broadcaster.children import SANDBOX_SECRET, TRACKING_SECRET, Sandbox, Spawn

from cli.processes import Service, free_port


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The sandbox provider as a child process, with the recipient simulator off."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    service = Service(
        "sandbox",
        ["sandbox"],
        {
            "ALLIM_SANDBOX_PORT": str(port),
            "ALLIM_SANDBOX_PROFILE": "off",
            "ALLIM_SANDBOX_SECRET_KEY": SANDBOX_SECRET,
            "ALLIM_ENVIRONMENT": "test",
            "ALLIM_TRACKING_SECRET": TRACKING_SECRET,
            "ALLIM_LOG_LEVEL": "WARNING",
        },
        f"{url}/_sandbox/config",
        tmp_path_factory.mktemp("sandbox") / "sandbox.log",
    )
    service.start()
    try:
        service.wait_ready(60)
        yield Sandbox(url, service)
    finally:
        service.stop()


@pytest.fixture
def broadcaster_env(
    database_url: str, kafka_topics: str, sandbox: Sandbox, tmp_path: Path
) -> dict[str, str]:
    """Environment of an `allim broadcaster` child process on the test stack and sandbox."""
    suffix = uuid.uuid4().hex[:8]
    return {
        "ALLIM_ENVIRONMENT": "test",
        "ALLIM_DATABASE_URL": database_url,
        "ALLIM_KAFKA_BOOTSTRAP": kafka_topics,
        "ALLIM_TRACKING_SECRET": TRACKING_SECRET,
        "ALLIM_KAKAO_BASE_URL": sandbox.url,
        "ALLIM_KAKAO_SECRET": SANDBOX_SECRET,
        "ALLIM_BROADCASTER_PLANNER_GROUP": f"planner-{suffix}",
        "ALLIM_BROADCASTER_SENDER_GROUP": f"senders-{suffix}",
        # a rate bucket of its own: a rate learned, or a 429's pause, in another test's
        # bucket (the row outlives the test) does not hold this one back
        "ALLIM_BROADCASTER_RATE_BUCKET": f"provider-{suffix}",
        "ALLIM_BROADCASTER_SESSION_TIMEOUT_MS": "6000",
        "ALLIM_BROADCASTER_SHARD_SIZE": "500",
        "ALLIM_BROADCASTER_CONTROL_POLL_SECONDS": "0.2",
        # no quiet hours: these tests must not depend on the time of day in Seoul
        "ALLIM_BROADCASTER_QUIET_START": "00:00",
        "ALLIM_BROADCASTER_QUIET_END": "00:00",
        "ALLIM_LOG_LEVEL": os.environ.get("ALLIM_TEST_LOG_LEVEL", "INFO"),
    }


@pytest.fixture
def spawn(broadcaster_env: dict[str, str], tmp_path: Path) -> Iterator[Spawn]:
    """Makes `allim broadcaster --role ROLE` child processes; stops those left at the end."""
    made: list[Service] = []

    def make(role: str, name: str = "broadcaster", **env: str) -> Service:
        port = free_port()
        service = Service(
            name,
            ["broadcaster", "--role", role],
            {**broadcaster_env, **env, "ALLIM_BROADCASTER_METRICS_PORT": str(port)},
            f"http://127.0.0.1:{port}/metrics",
            tmp_path / f"{name}.log",
        )
        made.append(service)
        return service

    yield make
    for service in made:
        service.stop()
