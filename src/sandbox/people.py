"""How people treat an alert they received: whether and when they read it, and whom they
forward it to. A pure model; `simulator` turns its plans into real taps.

A delivered recipient reads with probability `read_share`; a reader forwards with
probability `forward_share` to 1 + Poisson(mean_friends - 1) friends, each of whom reads
with probability `friend_read_share` and behaves like a reader from then on. Each reader
adds f = forward_share * mean_friends * friend_read_share readers on average, so the read
rate (readers / delivered) is read_share / (1 - f). Some readers tap the link again later,
which adds taps but not readers.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

# most people read within minutes, a tail reads hours later (simulated seconds)
_SOON_SHARE = 0.75
_SOON_MEDIAN = 180.0
_SOON_SIGMA = 1.0
_LATE_MEDIAN = 2 * 3600.0
_LATE_SIGMA = 0.8
_FORWARD_MEDIAN = 120.0
_FORWARD_SIGMA = 1.0
MAX_DELAY = 48 * 3600.0
# a chain of forwards stops after this many hops, a cascade after this many readers
MAX_GENERATION = 20
MAX_CASCADE = 1000


@dataclass(frozen=True)
class Profile:
    """How a population treats alerts."""

    name: str
    read_share: float
    forward_share: float
    mean_friends: float
    friend_read_share: float
    reread_share: float

    @property
    def offspring(self) -> float:
        """Readers each reader adds by forwarding, on average."""
        return self.forward_share * self.mean_friends * self.friend_read_share

    def expected_read_rate(self) -> float:
        """Readers per delivered recipient the profile produces on average."""
        return self.read_share / (1 - self.offspring)


PROFILES: dict[str, Profile] = {
    # Suwon's channel reported 107.1% on average
    "typical": Profile("typical", 0.80, 0.12, 3.0, 0.70, 0.15),
    # and 157.39% for a bus-strike notice
    "viral": Profile("viral", 0.85, 0.25, 2.62, 0.70, 0.20),
    "quiet": Profile("quiet", 0.36, 0.0625, 2.0, 0.80, 0.05),
}


@dataclass(frozen=True, slots=True)
class PlannedTap:
    """A tap `at` simulated seconds after delivery, by `person` (0 is the recipient)."""

    at: float
    person: int


class ReaderModel:
    """Draws what happens to delivered messages, from one seeded random stream."""

    def __init__(self, profile: Profile, rng: random.Random) -> None:
        self.profile = profile
        self._rng = rng
        self._soon_mu = math.log(_SOON_MEDIAN)
        self._late_mu = math.log(_LATE_MEDIAN)
        self._forward_mu = math.log(_FORWARD_MEDIAN)
        self._friend_extra = math.exp(-(profile.mean_friends - 1))

    def read_delay(self) -> float:
        """Simulated seconds between having a message and tapping its link."""
        rng = self._rng
        if rng.random() < _SOON_SHARE:
            delay = rng.lognormvariate(self._soon_mu, _SOON_SIGMA)
        else:
            delay = rng.lognormvariate(self._late_mu, _LATE_SIGMA)
        return min(delay, MAX_DELAY)

    def _friends(self) -> int:
        # 1 + Poisson(mean_friends - 1), by Knuth's product of uniforms (the mean is small)
        rng = self._rng
        count = 0
        product = rng.random()
        while product > self._friend_extra:
            count += 1
            product *= rng.random()
        return 1 + count

    def cascade(self) -> list[PlannedTap]:
        """Every tap one delivered message leads to: its recipient's and their friends'."""
        rng = self._rng
        profile = self.profile
        if rng.random() >= profile.read_share:
            return []
        taps: list[PlannedTap] = []
        readers = [(self.read_delay(), 0)]  # (when they read, generation)
        person = 0
        while readers and person < MAX_CASCADE:
            at, generation = readers.pop()
            taps.append(PlannedTap(at, person))
            if rng.random() < profile.reread_share:
                taps.append(PlannedTap(at + self.read_delay(), person))
            person += 1
            if generation < MAX_GENERATION and rng.random() < profile.forward_share:
                forwarded = at + rng.lognormvariate(self._forward_mu, _FORWARD_SIGMA)
                for _ in range(self._friends()):
                    if rng.random() < profile.friend_read_share:
                        readers.append((forwarded + self.read_delay(), generation + 1))
        return taps
