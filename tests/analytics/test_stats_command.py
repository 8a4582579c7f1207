"""`allim stats ID --database` prints the rollup of what the analytics consumer applied."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest
from tests.analytics.facts import Facts

from analytics.store import RollupStore
from cli.main import main


@pytest.fixture
async def applied_alert(store: RollupStore, facts: type[Facts]) -> AsyncIterator[uuid.UUID]:
    """An alert with one delivered batch and three taps applied."""
    alert = uuid.uuid4()
    await store.apply(
        facts.decoded(
            facts.delivery(alert, 0, 4),
            facts.tap(alert, 1, "a"),
            facts.tap(alert, 1, "b"),
            facts.tap(alert, 2, "c"),
        )
    )
    yield alert


@pytest.mark.integration
def test_stats_from_the_database(
    applied_alert: uuid.UUID,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ALLIM_DATABASE_URL", database_url)
    assert main(["stats", str(applied_alert), "--database", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert (body["delivered"], body["readers"], body["forwarded_readers"]) == (4, 3, 1)
    assert body["read_rate"] == 0.75

    assert main(["stats", str(applied_alert), "--database"]) == 0
    assert "75.0%" in capsys.readouterr().out

    unknown = uuid.uuid4()
    assert main(["stats", str(unknown), "--database"]) == 1
    assert f"Alert '{unknown}' is unknown." in capsys.readouterr().err
