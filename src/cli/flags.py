"""Flags that several `allim` commands share: how to reach the gateway, and settings overrides."""

from __future__ import annotations

import argparse
import os
from typing import TypeVar

from pydantic import BaseModel

GATEWAY_URL = "http://127.0.0.1:8000"

SettingsT = TypeVar("SettingsT", bound=BaseModel)


def gateway_flags(parser: argparse.ArgumentParser, key: str) -> None:
    """Add `--gateway` and `--api-key`; `key` says which key, as in "an operator API key"."""
    parser.add_argument(
        "--gateway",
        default=os.environ.get("ALLIM_GATEWAY_URL", GATEWAY_URL),
        help=f"gateway base URL (default: $ALLIM_GATEWAY_URL or {GATEWAY_URL})",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("ALLIM_API_KEY"),
        help=f"{key} (default: $ALLIM_API_KEY)",
    )


def overridden(settings: SettingsT, **flags: object) -> SettingsT:
    """`settings` with each flag that was given (not None) in place of its setting."""
    overrides = {name: value for name, value in flags.items() if value is not None}
    return settings.model_copy(update=overrides) if overrides else settings
