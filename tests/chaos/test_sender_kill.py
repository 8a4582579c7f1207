"""CI's small chaos run: a sender SIGKILLed during a 20,000-subscriber broadcast loses nobody
and sends nobody the alert twice, counted at the sandbox's ledger (bench/chaos.py, quick)."""

from __future__ import annotations

import pytest

import chaos

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_sender_sigkill_loses_and_doubles_nothing(kafka_topics: str) -> None:
    config = chaos.ChaosConfig(
        audience=20_000, rate=4_000.0, senders=2, scenarios=chaos.QUICK_SCENARIOS, seed=11
    )
    result = await chaos.run_chaos(config)
    scenarios = {s["name"]: s for s in result["scenarios"]}
    assert set(scenarios) == {"clean", "sender_sigkill"}
    for name, outcome in scenarios.items():
        assert outcome["error"] is None, (name, outcome)
        assert outcome["status"] == "completed", (name, outcome)
        assert outcome["accepted"] == 20_000, (name, outcome)
        assert outcome["duplicates"] == 0, (name, outcome)
        assert outcome["missing"] == 0, (name, outcome)
    killed = scenarios["sender_sigkill"]
    assert len(killed["kills_s"]) == 1, killed
    assert killed["kills_s"][0] < killed["seconds"], "the SIGKILL came after the broadcast ended"
    assert result["figures"]["chaos_duplicates"] == 0
    assert result["figures"]["chaos_missing"] == 0
