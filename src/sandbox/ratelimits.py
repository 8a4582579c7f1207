"""Token buckets for messages/s and requests/s, and the headers they produce.

A refusal carries `Retry-After`. With `ratelimit_headers`, every answer also carries the IETF
`RateLimit-Policy` and `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers): one policy
per limited bucket, the messages one in unit `messages` (recipients, as the dealer counts
them), the requests one in the draft's default unit `request`; `r` is what the bucket holds,
`t` the seconds until it is full again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from email.utils import formatdate

# a batch holds up to this many recipients: the message bucket must hold at least one batch
MAX_BATCH = 1000


class TokenBucket:
    """`rate` tokens a second, at most `capacity` saved up; a rate of 0 is unlimited."""

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self._stamp = now

    def refill(self, now: float) -> None:
        """Add the tokens earned since the last refill."""
        if now > self._stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def wait(self, amount: float) -> float:
        """Seconds until `amount` tokens are there (0 when they are there now)."""
        if self.rate <= 0 or self.tokens >= amount:
            return 0.0
        return (amount - self.tokens) / self.rate


@dataclass(frozen=True)
class Throttle:
    """A refusal: how long to wait and the headers that say so."""

    retry_after: float
    headers: dict[str, str]


class RateLimiter:
    """Admits a request of n messages when both buckets hold enough, else says how long to wait."""

    def __init__(
        self,
        messages_per_second: float,
        requests_per_second: float,
        burst_seconds: float,
        now: float,
        http_date: bool = False,
        ratelimit_headers: bool = False,
    ) -> None:
        self._messages = TokenBucket(
            messages_per_second, max(messages_per_second * burst_seconds, MAX_BATCH), now
        )
        self._requests = TokenBucket(
            requests_per_second, max(requests_per_second * burst_seconds, 1.0), now
        )
        self._http_date = http_date
        self._ratelimit_headers = ratelimit_headers

    def admit(self, messages: int, now: float, wall: float) -> Throttle | None:
        """Take the tokens of one request and return None, or return the refusal."""
        buckets = (self._messages, self._requests)
        for bucket in buckets:
            bucket.refill(now)
        wait = max(self._messages.wait(messages), self._requests.wait(1))
        if wait <= 0:
            for bucket, amount in zip(buckets, (messages, 1), strict=True):
                if bucket.rate > 0:
                    bucket.tokens -= amount
            return None
        seconds = max(1, math.ceil(wait))
        retry_after = formatdate(wall + seconds, usegmt=True) if self._http_date else str(seconds)
        return Throttle(wait, {"Retry-After": retry_after, **self.headers()})

    def headers(self) -> dict[str, str]:
        """The `RateLimit-Policy` and `RateLimit` fields as of the last request (none when
        they are off or nothing is limited)."""
        if not self._ratelimit_headers:
            return {}
        policies = []
        states = []
        for name, unit, bucket in (
            ("messages", ';qu="messages"', self._messages),
            ("requests", "", self._requests),
        ):
            if bucket.rate > 0:
                tokens = max(0.0, bucket.tokens)
                full = math.ceil((bucket.capacity - tokens) / bucket.rate)
                policies.append(f'"{name}";q={math.ceil(bucket.rate)};w=1{unit}')
                states.append(f'"{name}";r={math.floor(tokens)};t={full}')
        if not policies:
            return {}
        return {"RateLimit-Policy": ", ".join(policies), "RateLimit": ", ".join(states)}
