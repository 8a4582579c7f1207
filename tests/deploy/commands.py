"""Which settings class reads the environment of each process the image runs.

Each `allim` subcommand builds one settings class (its `load_settings()`); compose and the
Kubernetes manifests hand each process a set of ALLIM_* variables, and a name its class does
not have is silently ignored (`extra="ignore"`): a typo, or a setting given to the wrong
service. These helpers let the tests refuse both.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping, Sequence

import pytest
from pydantic_settings import BaseSettings

from analytics.config import AnalyticsSettings
from broadcaster.config import BroadcasterSettings
from cli.admin import SETTINGS_CLASSES
from common.config import CommonSettings
from gateway.config import GatewaySettings
from sandbox.config import SandboxSettings

# the allim subcommand (first argument after the image's `allim` entry point) -> its settings
SUBCOMMANDS: dict[str, type[BaseSettings]] = {
    "gateway": GatewaySettings,
    "broadcaster": BroadcasterSettings,
    "analytics": AnalyticsSettings,
    "sandbox": SandboxSettings,
    "migrate": CommonSettings,
    "topics": CommonSettings,
}


def settings_classes() -> list[type[BaseSettings]]:
    """Every settings class, as the README's settings tables list them."""
    classes = []
    for _, target in SETTINGS_CLASSES:
        module, _, name = target.partition(":")
        classes.append(getattr(importlib.import_module(module), name))
    return classes


def names(cls: type[BaseSettings]) -> set[str]:
    """The environment variable of every field of `cls`."""
    prefix = cls.model_config.get("env_prefix", "")
    return {f"{prefix}{field}".upper() for field in cls.model_fields}


def reader(args: Sequence[str]) -> type[BaseSettings]:
    """The settings class of the allim subcommand `args` runs."""
    if not args or args[0] not in SUBCOMMANDS:
        pytest.fail(f"Arguments {list(args)} run no allim subcommand this test knows.")
    return SUBCOMMANDS[args[0]]


def unknown(cls: type[BaseSettings], given: Iterable[str]) -> list[str]:
    """The ALLIM_* names of `given` that `cls` does not read."""
    return sorted(n for n in given if n.startswith("ALLIM_") and n not in names(cls))


def built(
    cls: type[BaseSettings], environment: Mapping[str, str], monkeypatch: pytest.MonkeyPatch
) -> BaseSettings:
    """`cls` built from `environment` alone (no other ALLIM_* variable, no .env file)."""
    with monkeypatch.context() as patched:
        for name in [n for n in os.environ if n.startswith("ALLIM_")]:
            patched.delenv(name)
        for name, value in environment.items():
            patched.setenv(name, value)
        return cls(_env_file=None)  # type: ignore[call-arg]
