"""Calibration of the reader model: read rates per profile, delays, repeatability."""

from __future__ import annotations

import random
import statistics

import pytest

from sandbox.people import MAX_DELAY, PROFILES, PlannedTap, ReaderModel

DELIVERED = 200_000


def _readers(taps: list[PlannedTap]) -> int:
    return len({tap.person for tap in taps})


@pytest.mark.parametrize(
    ("profile", "target"), [("typical", 1.07), ("viral", 1.57), ("quiet", 0.40)]
)
def test_profiles_produce_their_read_rate(profile: str, target: float) -> None:
    model = ReaderModel(PROFILES[profile], random.Random(20261125))
    readers = sum(_readers(model.cascade()) for _ in range(DELIVERED))
    assert readers / DELIVERED == pytest.approx(target, abs=0.015)
    assert PROFILES[profile].expected_read_rate() == pytest.approx(target, abs=0.005)


def test_most_read_within_minutes_and_a_tail_reads_hours_later() -> None:
    model = ReaderModel(PROFILES["typical"], random.Random(3))
    first_reads = [taps[0].at for taps in (model.cascade() for _ in range(50_000)) if taps]
    within_15_minutes = sum(1 for at in first_reads if at <= 15 * 60) / len(first_reads)
    after_an_hour = sum(1 for at in first_reads if at >= 3600) / len(first_reads)
    assert 0.55 <= within_15_minutes <= 0.85
    assert 0.10 <= after_an_hour <= 0.35
    assert statistics.median(first_reads) < 10 * 60
    assert max(first_reads) <= MAX_DELAY


def test_forwarded_readers_read_after_the_person_who_forwarded() -> None:
    model = ReaderModel(PROFILES["viral"], random.Random(5))
    cascades = [c for c in (model.cascade() for _ in range(20_000)) if _readers(c) > 1]
    assert cascades
    for taps in cascades:
        first_read = {}
        for tap in taps:
            first_read.setdefault(tap.person, tap.at)
        # the recipient (person 0) reads before anyone they forwarded to
        assert all(at > first_read[0] for person, at in first_read.items() if person)


def test_a_seed_makes_a_run_repeatable() -> None:
    def run(seed: int) -> list[list[PlannedTap]]:
        model = ReaderModel(PROFILES["typical"], random.Random(seed))
        return [model.cascade() for _ in range(2000)]

    assert run(11) == run(11)
    assert run(11) != run(12)


def test_rereads_add_taps_but_not_readers() -> None:
    model = ReaderModel(PROFILES["typical"], random.Random(9))
    cascades = [model.cascade() for _ in range(20_000)]
    taps = sum(len(c) for c in cascades)
    readers = sum(_readers(c) for c in cascades)
    assert readers < taps < readers * 1.3
