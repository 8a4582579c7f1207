"""`allim send` on a gateway that needs approval, then `allim test`, `allim reject` and
`allim approve`, served over real HTTP."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.gateway.bodies import AlertJson
from tests.serving import served

from cli.main import main
from common.db import session_factory
from common.models import Alert, Subscriber
from gateway.config import GatewaySettings
from gateway.main import create_app

pytestmark = pytest.mark.integration

TAG = f"cli-tester-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
async def gateway_url(
    gateway_settings: GatewaySettings, seeded_subscribers: list[str], engine: AsyncEngine
) -> AsyncIterator[str]:
    """A gateway that needs approval (and tests with this module's tag), over HTTP."""
    number = f"0179{uuid.uuid4().int % 10**7:07d}"
    async with session_factory(engine)() as session, session.begin():
        session.add(Subscriber(recipient_no=number, district="장안구", tags=[TAG]))
    settings = gateway_settings.model_copy(
        update={"gateway_approval_required": True, "gateway_test_tag": TAG}
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app), served(app) as url:
        yield url
    async with session_factory(engine)() as session, session.begin():
        await session.execute(
            update(Subscriber).where(Subscriber.recipient_no == number).values(status="opted_out")
        )


async def _allim(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def _status(engine: AsyncEngine, alert_id: str) -> str:
    async with session_factory(engine)() as session:
        alert = await session.get(Alert, uuid.UUID(alert_id))
        assert alert is not None
        return alert.status


async def _send(
    gateway_url: str,
    key: str,
    alert_json: AlertJson,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> str:
    file = tmp_path / f"{uuid.uuid4().hex}.json"
    file.write_text(json.dumps(alert_json(), ensure_ascii=False), "utf-8")
    assert (
        await _allim("send", "--gateway", gateway_url, "--api-key", key, "--file", str(file)) == 0
    )
    captured = capsys.readouterr()
    alert_id, status, _ = captured.out.split()
    assert status == "pending_approval"
    assert f"allim approve {alert_id}" in captured.err
    return alert_id


async def test_send_says_it_waits_then_test_and_approve(
    gateway_url: str,
    api_keys: dict[str, str],
    engine: AsyncEngine,
    alert_json: AlertJson,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    alert_id = await _send(gateway_url, api_keys["operator"], alert_json, tmp_path, capsys)
    operator = ("--gateway", gateway_url, "--api-key", api_keys["operator"])
    approver = ("--gateway", gateway_url, "--api-key", api_keys["approver"])

    assert await _allim("test", alert_id, *operator) == 0
    out = capsys.readouterr().out
    assert f"of {alert_id}: 1 test recipients (queued)" in out

    # the operator may not approve; nothing changes
    assert await _allim("approve", alert_id, *operator) == 1
    assert "403" in capsys.readouterr().err
    assert await _status(engine, alert_id) == "pending_approval"

    assert await _allim("approve", alert_id, *approver) == 0
    assert capsys.readouterr().out.strip() == f"{alert_id} queued"
    # a second approval is refused and says why
    assert await _allim("approve", alert_id, *approver) == 1
    assert "is queued, not waiting for approval" in capsys.readouterr().err


async def test_reject_needs_a_reason_and_says_it(
    gateway_url: str,
    api_keys: dict[str, str],
    engine: AsyncEngine,
    alert_json: AlertJson,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    alert_id = await _send(gateway_url, api_keys["operator"], alert_json, tmp_path, capsys)
    approver = ("--gateway", gateway_url, "--api-key", api_keys["approver"])
    with pytest.raises(SystemExit) as exited:
        main(["reject", alert_id, *approver])
    assert exited.value.code == 2
    capsys.readouterr()
    assert await _allim("reject", alert_id, "--reason", " ", *approver) == 1
    assert "reason" in capsys.readouterr().err
    assert await _status(engine, alert_id) == "pending_approval"
    assert await _allim("reject", alert_id, "--reason", "wrong district", *approver) == 0
    assert "rejected (Rejected by test approver: wrong district)" in capsys.readouterr().out
    assert await _allim("approve", "not-an-id", *approver) == 1
    assert "not an alert id" in capsys.readouterr().err
