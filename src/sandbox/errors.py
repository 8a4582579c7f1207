"""The sandbox's exceptions.

SandboxError
└── InvalidRequest     a send request breaks the provider contract; `field` names the culprit
"""

from __future__ import annotations


class SandboxError(Exception):
    """Base of the sandbox's errors."""


class InvalidRequest(SandboxError):
    """A request the provider answers with 400; the message names the field at fault."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"Field '{field}' {problem}.")
        self.field = field
