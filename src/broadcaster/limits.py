"""The send-rate budget the sender asks before every request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from broadcaster.quotas import Quota


class RateLimiter(Protocol):
    """A messages/s and requests/s budget, shared by every sender process.

    `acquire` waits until one request carrying `messages` recipients may go out; the
    other methods feed back what the provider answered, and the quotas it advertised in
    `RateLimit-Policy` / `RateLimit` headers (`broadcaster.quotas`), so the budget adapts.
    """

    async def acquire(self, messages: int) -> None:
        """Wait for budget for one request of `messages` recipients."""
        ...

    async def throttled(self, retry_after: float | None, quotas: Sequence[Quota] = ()) -> None:
        """The provider answered 429: pause everyone `retry_after` seconds and slow down."""
        ...

    async def server_error(self) -> None:
        """The provider answered 5xx or timed out: slow down."""
        ...

    async def succeeded(self, quotas: Sequence[Quota] = ()) -> None:
        """A request went through: follow the quotas it advertised, and let the rate grow."""
        ...
