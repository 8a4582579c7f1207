"""Fixtures of the contract tests: the broadcaster tests' world (its store, the builders of
subscribers and alerts, the sandbox provider and `allim broadcaster` child processes)."""

from __future__ import annotations

from tests.broadcaster.conftest import broadcaster_env, kit, producer, sandbox, spawn, store

__all__ = ["broadcaster_env", "kit", "producer", "sandbox", "spawn", "store"]
