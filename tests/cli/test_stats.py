"""`allim stats ID`: what it says when it cannot read a rollup."""

from __future__ import annotations

import uuid

import pytest

from cli.main import main
from cli.processes import free_port


def test_stats_refuses_a_malformed_id(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "not-an-id", "--api-key", "k"]) == 1
    assert "'not-an-id' is not an alert id" in capsys.readouterr().err


def test_stats_says_when_the_gateway_does_not_answer(capsys: pytest.CaptureFixture[str]) -> None:
    gateway = f"http://127.0.0.1:{free_port()}"
    assert main(["stats", str(uuid.uuid4()), "--gateway", gateway, "--api-key", "k"]) == 1
    assert f"The gateway at '{gateway}' did not answer" in capsys.readouterr().err
