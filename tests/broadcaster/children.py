"""The child processes of the broadcaster tests: the sandbox provider and `allim broadcaster`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from cli.processes import Service

SANDBOX_SECRET = "sandbox-secret-for-tests-0123456789"
TRACKING_SECRET = "test-tracking-secret-0123456789"


@dataclass
class Sandbox:
    """A running `allim sandbox` child process."""

    url: str
    service: Service

    def ledger(self, alert_id: uuid.UUID) -> dict[str, Any]:
        """The sandbox's ledger of the alert."""
        response = httpx.get(f"{self.url}/_sandbox/ledger/{alert_id}", timeout=10)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document

    def accepted_numbers(self, alert_id: uuid.UUID) -> list[str]:
        """Every recipientNo the sandbox accepted for the alert."""
        response = httpx.get(f"{self.url}/_sandbox/ledger/{alert_id}/recipients", timeout=30)
        response.raise_for_status()
        return [line for line in response.text.splitlines() if line]

    def configure(self, **behaviour: object) -> None:
        """Change the sandbox's behaviour at once (latency, shares, rates)."""
        response = httpx.patch(f"{self.url}/_sandbox/config", json=behaviour, timeout=10)
        response.raise_for_status()

    def sms_ledger(self, alert_id: uuid.UUID) -> dict[str, Any]:
        """The SMS dealer's ledger of the alert."""
        response = httpx.get(f"{self.url}/_sandbox/sms/ledger/{alert_id}", timeout=10)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document

    def sms_numbers(self, alert_id: uuid.UUID) -> list[str]:
        """Every recipientNo the SMS dealer accepted for the alert."""
        response = httpx.get(f"{self.url}/_sandbox/sms/ledger/{alert_id}/recipients", timeout=30)
        response.raise_for_status()
        return [line for line in response.text.splitlines() if line]


class Spawn(Protocol):
    """`spawn(role, name, **env)`: an `allim broadcaster --role ROLE` child process, not started."""

    def __call__(self, role: str, name: str = "broadcaster", **env: str) -> Service: ...
