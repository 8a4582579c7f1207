"""`/healthz` (the process runs) and `/readyz` (PostgreSQL and Kafka answer)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from common.problems import Problem
from gateway.deps import StateDep
from gateway.state import GatewayState

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_SECONDS = 2.0


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    """Always 200 while the process serves requests."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="PostgreSQL and Kafka are reachable",
    responses={
        503: {
            "description": "A dependency is down; `down` names which.",
            "content": {
                "application/problem+json": {
                    "schema": {"$ref": "#/components/schemas/ProblemDetails"}
                }
            },
        }
    },
)
async def readyz(state: StateDep) -> dict[str, Any]:
    """200 when a query runs and the Kafka producer is connected, else 503 naming what is down."""
    postgres, kafka = await asyncio.gather(_postgres_up(state), _kafka_up(state))
    down = [name for name, up in (("postgres", postgres), ("kafka", kafka)) if not up]
    if down:
        raise Problem(
            503, "Service Unavailable", f"Not ready: {', '.join(down)} unreachable.", down=down
        )
    return {"status": "ready", "postgres": "up", "kafka": "up"}


async def _postgres_up(state: GatewayState) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS), state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError, TimeoutError):
        logger.warning("readiness: PostgreSQL is unreachable", exc_info=True)
        return False
    return True


async def _kafka_up(state: GatewayState) -> bool:
    if not state.kafka.ready.is_set():
        return False
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await state.kafka.producer.client.fetch_all_metadata()
    except (KafkaError, OSError, TimeoutError):
        logger.warning("readiness: Kafka is unreachable", exc_info=True)
        return False
    return True
