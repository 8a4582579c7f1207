"""The dealer: what the sandbox decides about a send request, apart from HTTP.

It holds the live `Behaviour` and everything a decision reads or writes: the rate
limiter, the idempotency keys, the stored results, the ledger, the statistics and the
simulator that is told about accepted links.
"""

from __future__ import annotations

import random
import time
import zlib
from enum import Enum

import orjson

from sandbox.behaviour import Behaviour
from sandbox.clock import Clock, in_brand_quiet_hours
from sandbox.ledger import Ledger
from sandbox.ratelimits import RateLimiter
from sandbox.results import IdempotencyKeys, ResultStore, StoredBatch
from sandbox.simulator import RecipientSimulator
from sandbox.stats import Stats
from sandbox.validation import SendRequest

DELIVERED = 1000
INACTIVE = 3018
NOT_KAKAO_USER = 3019
BRAND_QUIET_HOURS = 3022
TEMPORARY_FAILURE = 5000
ALREADY_ACCEPTED = -1005
RESULT_MESSAGES = {
    DELIVERED: "success",
    INACTIVE: "recipient is inactive (no KakaoTalk use lately)",
    NOT_KAKAO_USER: "recipient is not a KakaoTalk user",
    BRAND_QUIET_HOURS: "BRAND messages are refused from 20:50 to 08:00 KST",
    TEMPORARY_FAILURE: "temporary failure, try this recipient again later",
}
SERVER_ERRORS = (500, 502, 503, 504)
_HASH_SPACE = 1 << 32
_SUCCESS_HEADER = b'{"resultCode":0,"resultMessage":"SUCCESS","isSuccessful":true}'


def _limits(behaviour: Behaviour) -> tuple[float, float, float, bool, bool]:
    return (
        behaviour.messages_per_second,
        behaviour.requests_per_second,
        behaviour.burst_seconds,
        behaviour.retry_after_http_date,
        behaviour.ratelimit_headers,
    )


class Fault(Enum):
    """A failure the behaviour injects into a send."""

    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    RESET = "reset"


class Dealer:
    """Decides and records the fate of send requests under the current behaviour."""

    def __init__(
        self,
        behaviour: Behaviour,
        *,
        clock: Clock,
        idempotency_seconds: float,
        stats: Stats,
        simulator: RecipientSimulator,
    ) -> None:
        self.clock = clock
        self.stats = stats
        self.simulator = simulator
        self.ledger = Ledger()
        self.results = ResultStore()
        self.idempotency = IdempotencyKeys(idempotency_seconds, clock)
        self._requests = 0
        self.behaviour = behaviour
        self.rng = random.Random(behaviour.seed)
        self.limiter = self._limiter(behaviour)
        simulator.configure(behaviour.profile, behaviour.time_scale, behaviour.seed)

    def apply(self, behaviour: Behaviour) -> None:
        """Behave as `behaviour` says from now on."""
        previous = self.behaviour
        self.behaviour = behaviour
        if _limits(behaviour) != _limits(previous):
            # new buckets start full; unchanged limits keep their buckets' state
            self.limiter = self._limiter(behaviour)
        if behaviour.seed != previous.seed:
            self.rng = random.Random(behaviour.seed)
        self.simulator.configure(behaviour.profile, behaviour.time_scale, behaviour.seed)

    def reset(self) -> None:
        """Forget every batch, key, ledger entry, statistic and scheduled tap."""
        self.ledger.clear()
        self.results.clear()
        self.idempotency.clear()
        self.stats.reset()
        self.simulator.clear()
        self.limiter = self._limiter(self.behaviour)

    @staticmethod
    def _limiter(behaviour: Behaviour) -> RateLimiter:
        return RateLimiter(
            behaviour.messages_per_second,
            behaviour.requests_per_second,
            behaviour.burst_seconds,
            time.monotonic(),
            http_date=behaviour.retry_after_http_date,
            ratelimit_headers=behaviour.ratelimit_headers,
        )

    def latency(self) -> float:
        """Seconds the next send takes, drawn from the latency distribution."""
        b = self.behaviour
        if b.latency == "fixed" or b.latency_ms <= 0:
            return b.latency_ms / 1000
        return self.rng.lognormvariate(0.0, b.lognormal_sigma()) * b.latency_ms / 1000

    def fault(self) -> Fault | None:
        """The fault to inject into the next send, if any."""
        b = self.behaviour
        if b.server_error_share + b.timeout_share + b.reset_share <= 0:
            return None
        draw = self.rng.random()
        if draw < b.server_error_share:
            return Fault.SERVER_ERROR
        if draw < b.server_error_share + b.timeout_share:
            return Fault.TIMEOUT
        if draw < b.server_error_share + b.timeout_share + b.reset_share:
            return Fault.RESET
        return None

    def accepted_before_fault(self) -> bool:
        """Whether a timeout or reset being injected happens after the batch was accepted."""
        return self.rng.random() < self.behaviour.fault_after_accept_share

    def server_error_status(self) -> int:
        """The status of an injected server error."""
        return self.rng.choice(SERVER_ERRORS)

    def _request_id(self) -> str:
        self._requests += 1
        return f"{self.clock.datetime():%Y%m%d%H%M%S}{self._requests:010d}"

    def accept(self, batch: SendRequest, idempotency_key: str | None) -> bytes:
        """Accept `batch`: decide each recipient's code, record it all; the 200 response body."""
        b = self.behaviour
        wall = time.time()
        quiet = batch.message_type == "BRAND" and in_brand_quiet_hours(self.clock.now())
        inactive_below = int(b.inactive_share * _HASH_SPACE)
        non_kakao_below = inactive_below + int(b.non_kakao_share * _HASH_SPACE)
        temporary = b.temporary_failure_share
        draw = self.rng.random
        crc32 = zlib.crc32
        messages = RESULT_MESSAGES
        results = []
        numbers = []
        links = []
        for seq, recipient in enumerate(batch.recipients, 1):
            number: str = recipient["recipientNo"]
            if quiet:
                code = BRAND_QUIET_HOURS
            else:
                # stable per recipient: the same number always falls in the same share
                spot = crc32(number.encode())
                if spot < inactive_below:
                    code = INACTIVE
                elif spot < non_kakao_below:
                    code = NOT_KAKAO_USER
                elif temporary and draw() < temporary:
                    code = TEMPORARY_FAILURE
                else:
                    code = DELIVERED
                    numbers.append(number)
                    parameters = recipient.get("templateParameter")
                    if parameters and (link := parameters.get("link")):
                        links.append(link)
            results.append(
                {
                    "recipientSeq": seq,
                    "recipientNo": number,
                    "recipientGroupingKey": recipient.get("recipientGroupingKey"),
                    "resultCode": code,
                    "resultMessage": messages[code],
                }
            )
        send_results = orjson.dumps(results)
        request_id = self._request_id()
        self.results.add(
            batch.sender_grouping_key, StoredBatch(request_id, send_results, len(results))
        )
        if idempotency_key is not None:
            self.idempotency.remember(idempotency_key)
        self.ledger.of(batch.alert_id).accept(numbers, wall)
        totals = self.stats.totals
        totals.batches_accepted += 1
        totals.recipients_refused += len(results) - len(numbers)
        self.stats.accepted(len(numbers), wall)
        self.simulator.delivered(links)
        return b"".join(
            (
                b'{"header":',
                _SUCCESS_HEADER,
                b',"message":{"requestId":',
                orjson.dumps(request_id),
                b',"senderGroupingKey":',
                orjson.dumps(batch.sender_grouping_key),
                b',"sendResults":',
                send_results,
                b"}}",
            )
        )
