"""`allim demo`'s last words: how to open the console on the run's data."""

from __future__ import annotations

from cli.demo import DemoPeople, console_hint


def test_the_hint_names_the_people_and_where_their_passwords_come_from() -> None:
    people = DemoPeople("demo-operator-abc123", "k1", "demo-approver-abc123", "k2")
    hint = console_hint(people)
    assert "make console" in hint
    assert "demo-operator-abc123 (operator)" in hint
    assert "demo-approver-abc123 (approver)" in hint
    assert "fresh passwords" in hint
    assert "k1" not in hint and "k2" not in hint  # keys are never printed
