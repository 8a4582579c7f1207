"""The broadcaster's exceptions.

BroadcasterError
└── ProviderError                  the provider did not take a batch
    ├── RetryableProviderError     5xx, timeout, reset: send the same batch again later
    │   └── ThrottledError         429: wait `retry_after`, slow down
    ├── PermanentProviderError     400, 401: sending the same body again will not help
    └── AlreadyAcceptedError       -1005: the idempotency key was seen; look the batch up
"""

from __future__ import annotations

from collections.abc import Sequence

from broadcaster.quotas import Quota


class BroadcasterError(Exception):
    """Base of the broadcaster's errors."""


class ProviderError(BroadcasterError):
    """The provider did not accept a batch."""


class RetryableProviderError(ProviderError):
    """A transient failure; the same batch may be sent again with the same idempotency key."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ThrottledError(RetryableProviderError):
    """The provider answered 429; `retry_after` is how long it asked us to wait, `quotas`
    what it advertised."""

    def __init__(
        self, message: str, retry_after: float | None = None, quotas: Sequence[Quota] = ()
    ) -> None:
        super().__init__(message, retry_after)
        self.quotas = tuple(quotas)


class PermanentProviderError(ProviderError):
    """The provider refused the request itself (400, 401); retrying will not help."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class AlreadyAcceptedError(ProviderError):
    """The provider already accepted a batch with this idempotency key (-1005)."""
