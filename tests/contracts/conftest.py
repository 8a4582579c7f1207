"""Fixtures of the contract tests: the broadcaster tests' world (its store, the builders of
subscribers and alerts, the sandbox provider and `allim broadcaster` child processes)."""

from __future__ import annotations

from tests.broadcaster.conftest import kit, producer, store
from tests.system import broadcaster_env, sandbox, spawn

__all__ = ["broadcaster_env", "kit", "producer", "sandbox", "spawn", "store"]
