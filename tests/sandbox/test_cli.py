"""`allim sandbox` as its own process: uvicorn with uvloop, stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest
from tests.waiting import eventually

from sandbox.client import SandboxClient

ALLIM = Path(sys.executable).with_name("allim")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
async def test_allim_sandbox_serves_resets_connections_and_stops_on_sigterm() -> None:
    port = _free_port()
    env = os.environ | {
        "ALLIM_ENVIRONMENT": "test",
        "ALLIM_TRACKING_SECRET": "test-tracking-secret-0123456789",
        "ALLIM_SANDBOX_SECRET_KEY": "cli-test-secret-0123456789",
        "ALLIM_SANDBOX_PROFILE": "off",
    }
    process = await asyncio.create_subprocess_exec(
        str(ALLIM), "sandbox", "--port", str(port), env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:

            async def healthy() -> bool:
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False  # not listening yet

            await eventually(healthy, 60, what="healthy")
            sandbox = SandboxClient(http, "allim-sandbox", "cli-test-secret-0123456789")
            body = {
                "senderKey": "s",
                # ALIMTALK: BRAND is refused (3022) at night in Seoul, and CI runs at any hour
                "messageType": "ALIMTALK",
                "templateCode": "T",
                "content": "c",
                "senderGroupingKey": "cli:0:1",
                "recipientList": [{"recipientNo": "01000000001"}],
            }
            assert (await sandbox.send(body)).status_code == 200
            await sandbox.configure(reset_share=1.0, fault_after_accept_share=0.0)
            with pytest.raises(httpx.ReadError):
                await sandbox.send(body)
            assert (await sandbox.ledger("cli"))["acceptances"] == 1
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 15)
        assert process.returncode == 0, stderr.decode()
        assert b"Traceback" not in stderr, stderr.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_placeholder_secret_is_refused_outside_development(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from sandbox.config import load_settings

    monkeypatch.setenv("ALLIM_ENVIRONMENT", "production")
    monkeypatch.setenv("ALLIM_TRACKING_SECRET", "a-real-tracking-secret-of-length")
    monkeypatch.delenv("ALLIM_SANDBOX_SECRET_KEY", raising=False)
    with pytest.raises(ValidationError, match="ALLIM_SANDBOX_SECRET_KEY"):
        load_settings()
    monkeypatch.setenv("ALLIM_SANDBOX_SECRET_KEY", "a-real-sandbox-secret")
    assert load_settings().sandbox_secret_key.get_secret_value() == "a-real-sandbox-secret"
