"""The KakaoTalk dealer: what the sandbox decides about a send request, apart from HTTP.

Besides what every dealer does (`sandbox.dealing`), it decides each recipient's code and
tells the recipient simulator about accepted links.
"""

from __future__ import annotations

import time
import zlib
from itertools import compress

import orjson

from sandbox.behaviour import Behaviour
from sandbox.clock import Clock, in_brand_quiet_hours
from sandbox.dealing import HASH_SPACE, BaseDealer
from sandbox.results import StoredBatch
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
_SUCCESS_HEADER = b'{"resultCode":0,"resultMessage":"SUCCESS","isSuccessful":true}'


class Dealer(BaseDealer[Behaviour]):
    """Decides and records the fate of KakaoTalk send requests under the current behaviour."""

    def __init__(
        self,
        behaviour: Behaviour,
        *,
        clock: Clock,
        idempotency_seconds: float,
        stats: Stats,
        simulator: RecipientSimulator,
    ) -> None:
        super().__init__(
            behaviour, clock=clock, idempotency_seconds=idempotency_seconds, stats=stats
        )
        self.simulator = simulator
        simulator.configure(behaviour.profile, behaviour.time_scale, behaviour.seed)

    def apply(self, behaviour: Behaviour) -> None:
        """Behave as `behaviour` says from now on."""
        super().apply(behaviour)
        self.simulator.configure(behaviour.profile, behaviour.time_scale, behaviour.seed)

    def reset(self) -> None:
        """Forget every batch, key, ledger entry, statistic and scheduled tap."""
        super().reset()
        self.simulator.clear()

    def _code(
        self, number: str, inactive_below: int, non_kakao_below: int, temporary: float
    ) -> int:
        """A recipient's code under the behaviour's shares of refusals and failures."""
        # stable per recipient: the same number always falls in the same share
        spot = zlib.crc32(number.encode())
        if spot < inactive_below:
            return INACTIVE
        if spot < non_kakao_below:
            return NOT_KAKAO_USER
        if temporary and self.rng.random() < temporary:
            return TEMPORARY_FAILURE
        return DELIVERED

    def accept(self, batch: SendRequest, idempotency_key: str | None) -> bytes:
        """Accept `batch`: decide each recipient's code, record it all; the 200 response body."""
        b = self.behaviour
        wall = time.time()
        quiet = batch.message_type == "BRAND" and in_brand_quiet_hours(self.clock.now())
        inactive_below = int(b.inactive_share * HASH_SPACE)
        non_kakao_below = inactive_below + int(b.non_kakao_share * HASH_SPACE)
        temporary = b.temporary_failure_share
        recipients = batch.recipients
        everyone = [recipient["recipientNo"] for recipient in recipients]
        if quiet:
            codes = [BRAND_QUIET_HOURS] * len(everyone)
        elif non_kakao_below or temporary:
            codes = [
                self._code(number, inactive_below, non_kakao_below, temporary)
                for number in everyone
            ]
        else:
            # no share of refusals or failures is asked for: every recipient is delivered
            codes = [DELIVERED] * len(everyone)
        messages = RESULT_MESSAGES
        results = [
            {
                "recipientSeq": seq,
                "recipientNo": number,
                "recipientGroupingKey": recipient.get("recipientGroupingKey"),
                "resultCode": code,
                "resultMessage": messages[code],
            }
            for seq, (number, recipient, code) in enumerate(
                zip(everyone, recipients, codes, strict=True), 1
            )
        ]
        delivered = [code == DELIVERED for code in codes]
        numbers = everyone if all(delivered) else list(compress(everyone, delivered))
        links = [
            link
            for recipient in compress(recipients, delivered)
            if (parameters := recipient.get("templateParameter"))
            and (link := parameters.get("link"))
        ]
        send_results = orjson.dumps(results)
        request_id = self.request_id()
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
