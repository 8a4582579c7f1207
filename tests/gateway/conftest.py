"""Gateway fixtures: the app on the session's database and broker, a client, API keys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.gateway.bodies import AlertJson, alert_body

from common.db import session_factory
from common.models import Subscriber
from gateway.auth import enrol
from gateway.config import GatewaySettings
from gateway.main import create_app
from gateway.users import Role

BASE_URL = "http://gateway.test"


@pytest.fixture(scope="session")
def gateway_settings(database_url: str, kafka_topics: str) -> GatewaySettings:
    """Settings of a gateway on the test database and broker."""
    return GatewaySettings(
        environment="test",
        database_url=database_url,
        kafka_bootstrap=kafka_topics,
        tracking_secret=SecretStr("test-tracking-secret-0123456789"),
        public_base_url=BASE_URL,
        gateway_outbox_poll_seconds=0.05,
        gateway_sse_poll_seconds=0.05,
        # most gateway tests are about other things than approval, which
        # tests/gateway/test_approval.py runs on an app of its own
        gateway_approval_required=False,
    )


# the subscribers every gateway test may address: an alert to a district or tag nobody has
# is refused, so the shared body (`alert_body`, district 장안구) needs someone there
SEEDED_DISTRICTS = ("장안구", "권선구", "팔달구", "영통구")
SEEDED_TAGS = ("bus", "senior")


async def seed_subscribers(engine: AsyncEngine) -> list[str]:
    """Add one active subscriber per district of Suwon, each tagged `bus` and `senior`."""
    numbers = [f"0109990{n:04d}" for n in range(len(SEEDED_DISTRICTS))]
    async with session_factory(engine)() as session:
        session.add_all(
            Subscriber(recipient_no=number, district=district, tags=list(SEEDED_TAGS))
            for number, district in zip(numbers, SEEDED_DISTRICTS, strict=True)
        )
        await session.commit()
    return numbers


@pytest.fixture(scope="session")
async def seeded_subscribers(engine: AsyncEngine) -> list[str]:
    """The session database's subscribers from `seed_subscribers`."""
    return await seed_subscribers(engine)


@pytest.fixture(scope="session")
async def gateway_app(
    gateway_settings: GatewaySettings, seeded_subscribers: list[str]
) -> AsyncIterator[FastAPI]:
    """The app with its lifespan running and its Kafka producer connected, and subscribers
    in each of Suwon's districts to address."""
    app = create_app(gateway_settings)
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(app.state.gateway.kafka.ready.wait(), 60)
        yield app


@pytest.fixture
async def client(gateway_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of the app (cookies kept per test)."""
    transport = httpx.ASGITransport(app=gateway_app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


@pytest.fixture(scope="session")
async def api_keys(engine: AsyncEngine) -> dict[Role, str]:
    """One API key per role, each of a user of its own (`test <role>`)."""
    keys: dict[Role, str] = {}
    async with session_factory(engine)() as session, session.begin():
        for role in ("viewer", "operator", "approver", "admin"):
            _, keys[role] = await enrol(session, f"test {role}", role)
    return keys


@pytest.fixture
def operator(api_keys: dict[Role, str]) -> dict[str, str]:
    """Headers of a caller with the operator role."""
    return {"X-API-Key": api_keys["operator"]}


@pytest.fixture
def viewer(api_keys: dict[Role, str]) -> dict[str, str]:
    """Headers of a caller with the viewer role."""
    return {"X-API-Key": api_keys["viewer"]}


@pytest.fixture
def approver(api_keys: dict[Role, str]) -> dict[str, str]:
    """Headers of a caller with the approver role."""
    return {"X-API-Key": api_keys["approver"]}


@pytest.fixture
def admin(api_keys: dict[Role, str]) -> dict[str, str]:
    """Headers of a caller with the admin role."""
    return {"X-API-Key": api_keys["admin"]}


@pytest.fixture
def alert_json() -> AlertJson:
    """`alert_json(**changes)`: a valid alert body with some fields changed."""
    return alert_body
