"""The SMS dealer: the fate of each recipient of an SMS or LMS batch it accepts.

Besides what every dealer does (`sandbox.dealing`), it answers a stable share of numbers as
unable to receive, draws temporary failures per attempt, and tells the recipient simulator
about the links of accepted texts (people tap those less often than KakaoTalk's).
"""

from __future__ import annotations

import time
import zlib

import orjson

from sandbox.behaviour import SmsBehaviour
from sandbox.clock import Clock
from sandbox.dealing import HASH_SPACE, BaseDealer
from sandbox.results import StoredBatch
from sandbox.simulator import RecipientSimulator
from sandbox.sms_validation import SmsRequest
from sandbox.stats import Stats

ACCEPTED = 0
UNREACHABLE = -8012
TEMPORARY_FAILURE = -9997
RESULT_MESSAGES = {
    ACCEPTED: "SUCCESS",
    UNREACHABLE: "the number cannot receive (invalid, unknown or not in service)",
    TEMPORARY_FAILURE: "temporary failure at the carrier, try this recipient again later",
}
# statusCode of an accepted request: 2 is "request complete"
REQUEST_COMPLETE = "2"
_SUCCESS_HEADER = b'{"isSuccessful":true,"resultCode":0,"resultMessage":"SUCCESS"}'


class SmsDealer(BaseDealer[SmsBehaviour]):
    """Decides and records the fate of SMS and LMS send requests under the current behaviour."""

    def __init__(
        self,
        behaviour: SmsBehaviour,
        *,
        send_no: str,
        clock: Clock,
        idempotency_seconds: float,
        stats: Stats,
        simulator: RecipientSimulator,
    ) -> None:
        super().__init__(
            behaviour, clock=clock, idempotency_seconds=idempotency_seconds, stats=stats
        )
        self.send_no = send_no
        self.simulator = simulator
        simulator.set_read_factor("sms", behaviour.read_factor)

    def apply(self, behaviour: SmsBehaviour) -> None:
        """Behave as `behaviour` says from now on."""
        super().apply(behaviour)
        self.simulator.set_read_factor("sms", behaviour.read_factor)

    def accept(self, batch: SmsRequest) -> bytes:
        """Accept `batch`: decide each recipient's code, record it all; the 200 response body."""
        b = self.behaviour
        wall = time.time()
        unreachable_below = int(b.unreachable_share * HASH_SPACE)
        temporary = b.temporary_failure_share
        draw = self.rng.random
        crc32 = zlib.crc32
        results = []
        numbers = []
        links = []
        for seq, recipient in enumerate(batch.recipients, 1):
            number: str = recipient["recipientNo"]
            # stable per number: the same number always falls in the same share
            if crc32(number.encode()) < unreachable_below:
                code = UNREACHABLE
            elif temporary and draw() < temporary:
                code = TEMPORARY_FAILURE
            else:
                code = ACCEPTED
                numbers.append(number)
                if batch.uses_link:
                    links.append(recipient["templateParameter"]["link"])
            results.append(
                {
                    "recipientSeq": seq,
                    "recipientNo": number,
                    "recipientGroupingKey": recipient.get("recipientGroupingKey"),
                    "resultCode": code,
                    "resultMessage": RESULT_MESSAGES[code],
                }
            )
        send_results = orjson.dumps(results)
        request_id = self.request_id()
        key = batch.sender_grouping_key
        self.results.add(key, StoredBatch(request_id, send_results, len(results)))
        self.idempotency.remember(key)
        self.ledger.of(batch.alert_id).accept(numbers, wall)
        totals = self.stats.totals
        totals.batches_accepted += 1
        totals.recipients_refused += len(results) - len(numbers)
        self.stats.accepted(len(numbers), wall)
        self.simulator.delivered(links, "sms")
        return b"".join(
            (
                b'{"header":',
                _SUCCESS_HEADER,
                b',"body":{"data":{"requestId":',
                orjson.dumps(request_id),
                b',"statusCode":"',
                REQUEST_COMPLETE.encode(),
                b'","senderGroupingKey":',
                orjson.dumps(key),
                b',"sendResultList":',
                send_results,
                b"}}}",
            )
        )
