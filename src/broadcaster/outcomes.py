"""What a provider's answer to one batch means: settled, failed, or to be sent again.

Pure functions of the answer and the batch: no clock, no store, no provider. A shard's
delivery (`broadcaster.delivery`) turns the result into a settlement and a delivery event
and sends the follow-up batch, if there is one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from broadcaster.providers.base import (
    BRAND_QUIET_HOURS,
    DELIVERED,
    TEMPORARY_FAILURE,
    UNCONFIRMED,
    BatchResult,
)
from broadcaster.records import BatchRow, FollowUp, Settlement
from common.messages import Category, Channel

# a failure's reason is kept to this many characters in the failures table
REASON_LENGTH = 200


@dataclass(frozen=True)
class Verdict:
    """The provider's answer read recipient by recipient, in the order they were sent."""

    codes: list[int]  # a result code for each recipient sent to
    delivered: int
    failed_ids: list[int]
    failed_codes: list[int]
    failed_reasons: list[str]
    again: list[int]  # recipients to send again later (temporary failures, quiet hours)
    quiet_hours: bool  # some are sent again because the provider is in BRAND quiet hours
    # recipients KakaoTalk refused with one of the alert's fallback codes: SMS/LMS next
    fallback: list[int] = field(default_factory=list)

    @property
    def failed_by_reason(self) -> dict[str, int]:
        """How many recipients failed with each result code."""
        by_reason: dict[str, int] = {}
        for code in self.failed_codes:
            by_reason[str(code)] = by_reason.get(str(code), 0) + 1
        return by_reason


def judge(
    sent: Sequence[int], result: BatchResult, fallback_codes: frozenset[int] = frozenset()
) -> Verdict:
    """Read `result` for the subscribers `sent` to (in id order); unanswered ones are retried.

    An answer out of request order is matched by subscriber id; a recipient it does not
    mention counts as a temporary failure, so it is sent again rather than lost. 3005 (sent,
    receipt not confirmed) counts as delivered and is never sent again. A refusal with one
    of `fallback_codes` is neither delivered nor failed: the recipient goes to the fallback.
    """
    codes, messages = result.result_codes, result.messages
    if result.subscriber_ids != list(sent):
        answered = dict(zip(result.subscriber_ids, codes, strict=True))
        codes = [answered.get(i, TEMPORARY_FAILURE) for i in sent]
        messages = messages | {i: "missing from the answer" for i in sent if i not in answered}
    delivered = codes.count(DELIVERED)
    failed_ids: list[int] = []
    failed_codes: list[int] = []
    failed_reasons: list[str] = []
    again: list[int] = []
    fallback: list[int] = []
    quiet_hours = False
    if delivered < len(codes):
        for subscriber_id, code in zip(sent, codes, strict=True):
            if code == DELIVERED:
                continue
            if code == UNCONFIRMED:
                delivered += 1
            elif code in fallback_codes:
                fallback.append(subscriber_id)
            elif code in (TEMPORARY_FAILURE, BRAND_QUIET_HOURS):
                again.append(subscriber_id)
                quiet_hours = quiet_hours or code == BRAND_QUIET_HOURS
            else:
                failed_ids.append(subscriber_id)
                failed_codes.append(code)
                reason = f"{code} {messages.get(subscriber_id, '')}"
                failed_reasons.append(reason[:REASON_LENGTH])
    return Verdict(
        list(codes),
        delivered,
        failed_ids,
        failed_codes,
        failed_reasons,
        again,
        quiet_hours,
        fallback,
    )


def refused(batch_id: str, sent: Sequence[int], status: int, reason: str) -> BatchResult:
    """A request the provider refused as a whole: every recipient failed with its status."""
    return BatchResult(batch_id, list(sent), [status] * len(sent), dict.fromkeys(sent, reason))


def follow_up(
    verdict: Verdict, batch_id: str, seq: int, not_before: datetime, channel: Channel = "kakao"
) -> BatchRow:
    """The held batch that sends `verdict.again` once `not_before` has come, by `channel`."""
    again = verdict.again
    return BatchRow(batch_id, seq, again[0], again[-1], "held", tuple(again), not_before, channel)


def fallback_batch(verdict: Verdict, batch_id: str, seq: int, not_before: datetime) -> BatchRow:
    """The held SMS/LMS batch of those KakaoTalk refused, sent once `not_before` has come."""
    ids = verdict.fallback
    return BatchRow(batch_id, seq, ids[0], ids[-1], "held", tuple(ids), not_before, "sms")


def settlement(
    batch: BatchRow,
    alert_id: uuid.UUID,
    shard_no: int,
    sent: Sequence[int],
    verdict: Verdict,
    then: BatchRow | None,
    last_id: int | None = None,
    fallback: BatchRow | None = None,
) -> Settlement:
    """The batch's settlement: its counts, its failures, and the follow-up `then`, if any.

    The shard's progress moves to `last_id`, by default the last recipient sent to.
    """
    highest = last_id if last_id is not None else (sent[-1] if sent else 0)
    return Settlement(
        batch_id=batch.id,
        alert_id=alert_id,
        shard_no=shard_no,
        last_id=highest,
        sent=len(sent),
        delivered=verdict.delivered,
        failed_ids=verdict.failed_ids,
        failed_codes=verdict.failed_codes,
        failed_reasons=verdict.failed_reasons,
        follow_up=None
        if then is None or then.subscriber_ids is None or then.not_before is None
        else FollowUp(then.id, then.seq, then.subscriber_ids, then.not_before),
        sent_ids=sent,
        codes=verdict.codes,
        fallback=None
        if fallback is None or fallback.subscriber_ids is None or fallback.not_before is None
        else FollowUp(fallback.id, fallback.seq, fallback.subscriber_ids, fallback.not_before),
    )


def delivery_event(
    batch: BatchRow,
    alert_id: uuid.UUID,
    shard_no: int,
    category: Category,
    sent: list[int],
    verdict: Verdict,
    test_of: uuid.UUID | None = None,
) -> dict[str, Any]:
    """The JSON of the batch's `DeliveryBatchData`, built directly (see `Publisher.deliveries`);
    a test send's batches carry `test_of`."""
    event: dict[str, Any] = {
        "alert_id": str(alert_id),
        "channel": batch.channel,
        "batch_id": batch.id,
        "shard_no": shard_no,
        "seq": batch.seq,
        "category": category,
        "delivered": verdict.delivered,
        "failed": len(verdict.failed_ids),
        "failed_by_reason": verdict.failed_by_reason,
        "subscriber_ids": sent,
        "result_codes": verdict.codes,
    }
    if test_of is not None:
        event["test_of"] = str(test_of)
    return event
