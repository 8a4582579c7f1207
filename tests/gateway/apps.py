"""Gateway apps with settings of a test's own, their lifespans running, and a client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from gateway.config import GatewaySettings
from gateway.main import create_app

BASE_URL = "http://approval.test"
Client = httpx.AsyncClient


@asynccontextmanager
async def running(settings: GatewaySettings) -> AsyncIterator[Client]:
    """A client of a gateway app built from `settings`, with its lifespan running."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(app.state.gateway.kafka.ready.wait(), 60)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield client


def approving(settings: GatewaySettings, **changes: Any) -> GatewaySettings:
    """`settings` with approval on (and `changes`); the sweep left to the tests."""
    update_ = {"gateway_approval_required": True, "gateway_approval_sweep_seconds": 3600.0}
    return settings.model_copy(update=update_ | changes)
