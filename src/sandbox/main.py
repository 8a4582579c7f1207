"""The sandbox's app factory; its lifespan is the only place that wires things together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from common import problems
from common.collector import tune_collector
from sandbox import admin, api, sms_api
from sandbox.behaviour import Behaviour, SmsBehaviour
from sandbox.clock import Clock
from sandbox.config import SandboxSettings
from sandbox.connections import SandboxApp
from sandbox.dealer import Dealer
from sandbox.simulator import RecipientSimulator
from sandbox.sms_dealer import SmsDealer
from sandbox.stats import Stats
from sandbox.taps import TapConnection


def create_app(settings: SandboxSettings) -> FastAPI:
    """The sandbox provider and recipient simulator for `settings`."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            # people keep their own cookies (the simulator's); connections keep none
            clients = [
                TapConnection(settings.sandbox_tap_timeout_seconds)
                for _ in range(settings.sandbox_tap_concurrency)
            ]
            for client in clients:
                stack.push_async_callback(client.close)
            stats = Stats(settings.sandbox_stats_window_seconds)
            simulator = RecipientSimulator(
                clients, stats, max_pending=settings.sandbox_max_pending_taps
            )
            clock = Clock()
            app.state.dealer = Dealer(
                Behaviour.from_settings(settings),
                clock=clock,
                idempotency_seconds=settings.sandbox_idempotency_seconds,
                stats=stats,
                simulator=simulator,
            )
            app.state.sms_dealer = SmsDealer(
                SmsBehaviour.from_settings(settings),
                send_no=settings.sandbox_sms_send_no,
                clock=clock,
                idempotency_seconds=settings.sandbox_idempotency_seconds,
                stats=Stats(settings.sandbox_stats_window_seconds),
                simulator=simulator,
            )
            background = [asyncio.create_task(simulator.run()), tune_collector()]
            try:
                yield
            finally:
                for task in background:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    app = SandboxApp(
        title="allim sandbox",
        version="0.1.0",
        description="A local KakaoTalk dealer, an SMS/LMS dealer, and simulated recipients "
        "who read and forward.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    problems.install(app)
    app.include_router(api.router)
    app.include_router(sms_api.router)
    app.include_router(admin.router)

    @app.get("/healthz", tags=["health"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
