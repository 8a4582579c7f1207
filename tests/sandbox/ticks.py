"""A clock for the sandbox dealers' rate buckets that only the test moves (the `ticks`
fixture installs it): a refill is proven by moving it, not by waiting."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Ticks:
    """Monotonic seconds that pass when `advance` says so."""

    seconds: float

    def now(self) -> float:
        """The current reading."""
        return self.seconds

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass."""
        self.seconds += seconds
