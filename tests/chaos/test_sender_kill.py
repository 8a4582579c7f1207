"""CI's small chaos run: `bench/chaos.py --quick` on the test stack. A sender SIGKILLed during a
20,000-subscriber broadcast loses nobody and sends nobody the alert twice, counted at the
sandbox's ledger, and analytics counts as delivered what the broadcaster and the ledger do."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


async def test_sender_sigkill_loses_and_doubles_nothing(kafka_topics: str, tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    # the script reads the stack from ALLIM_DATABASE_URL and ALLIM_KAFKA_BOOTSTRAP, as ours
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "chaos.py"),
        "--quick",
        "--seed",
        "11",
        "--out",
        str(out),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 900)
    assert out.exists(), output.decode(errors="replace")[-4000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    scenarios = {s["name"]: s for s in result["scenarios"]}
    assert set(scenarios) == {"clean", "sender_sigkill"}
    for name, outcome in scenarios.items():
        assert outcome["error"] is None, (name, outcome)
        assert outcome["status"] == "completed", (name, outcome)
        assert outcome["accepted"] == 20_000, (name, outcome)
        assert outcome["duplicates"] == 0, (name, outcome)
        assert outcome["missing"] == 0, (name, outcome)
        assert outcome["broadcaster_delivered"] == 20_000, (name, outcome)
        assert outcome["analytics_delivered"] == 20_000, (name, outcome)
    killed = scenarios["sender_sigkill"]
    assert len(killed["kills_s"]) == 1, killed
    assert killed["kills_s"][0] < killed["seconds"], "the SIGKILL came after the broadcast ended"
    assert result["figures"]["chaos_duplicates"] == 0
    assert result["figures"]["chaos_missing"] == 0
    assert process.returncode == 0, output.decode(errors="replace")[-4000:]
