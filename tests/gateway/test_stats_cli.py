"""`allim stats ID` against a running `allim gateway`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.main import main
from cli.processes import Service, free_port
from common.db import session_factory
from common.models import AlertStats

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def gateway_url(database_url: str, kafka_topics: str, tmp_path: Path) -> Iterator[str]:
    """`allim gateway` on a free port, on the session's database."""
    port = free_port()
    service = Service(
        "gateway",
        ["gateway"],
        {
            "ALLIM_ENVIRONMENT": "test",
            "ALLIM_DATABASE_URL": database_url,
            "ALLIM_KAFKA_BOOTSTRAP": kafka_topics,
            "ALLIM_TRACKING_SECRET": "test-tracking-secret-0123456789",
            "ALLIM_GATEWAY_PORT": str(port),
        },
        f"http://127.0.0.1:{port}/healthz",
        tmp_path / "gateway.log",
    )
    service.start()
    try:
        service.wait_ready(60)
        yield f"http://127.0.0.1:{port}"
    finally:
        service.stop()


async def test_stats_prints_the_summary_the_gateway_serves(
    gateway_url: str,
    api_keys: dict[str, str],
    engine: AsyncEngine,
    capsys: pytest.CaptureFixture[str],
) -> None:
    alert = uuid.uuid4()
    async with session_factory(engine)() as session:
        session.add(
            AlertStats(
                alert_id=alert,
                category="public",
                targeted=200,
                delivered=200,
                failed=0,
                failed_by_reason={},
                readers=214,
                first_readers=150,
                forwarded_readers=64,
                taps=300,
            )
        )
        await session.commit()
    key = api_keys["viewer"]

    code = await asyncio.to_thread(
        main, ["stats", str(alert), "--gateway", gateway_url, "--api-key", key]
    )

    assert code == 0
    out = capsys.readouterr().out
    assert "107.0%" in out  # read rate 214 / 200
    assert "64 (29.9%)" in out  # forwarded readers and forward rate

    unknown = uuid.uuid4()
    code = await asyncio.to_thread(
        main, ["stats", str(unknown), "--gateway", gateway_url, "--api-key", key]
    )
    assert code == 1
    assert f"The gateway answered 404: Alert '{unknown}' is unknown." in capsys.readouterr().err

    code = await asyncio.to_thread(
        main, ["stats", str(alert), "--gateway", gateway_url, "--api-key", "allim_x_y"]
    )
    assert code == 1
    assert "The gateway answered 401" in capsys.readouterr().err
