"""A provider's answer to a batch, read as a verdict, a settlement and a delivery event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from broadcaster import outcomes
from broadcaster.providers.base import BatchResult
from broadcaster.records import BatchRow

ALERT = uuid.UUID("00000000-0000-0000-0000-000000000001")
BATCH = BatchRow(f"{ALERT}:3:7", 7, 10, 20)


def test_everyone_delivered_is_a_verdict_without_failures_or_retries() -> None:
    verdict = outcomes.judge([10, 11, 12], BatchResult(BATCH.id, [10, 11, 12], [1000] * 3))

    assert (verdict.delivered, verdict.failed_ids, verdict.again) == (3, [], [])
    assert verdict.failed_by_reason == {}


def test_permanent_failures_keep_their_code_and_reason_and_temporary_ones_go_again() -> None:
    result = BatchResult(
        BATCH.id, [10, 11, 12, 13], [1000, 3018, 5000, 3019], {11: "inactive", 13: "x" * 300}
    )

    verdict = outcomes.judge([10, 11, 12, 13], result)

    assert verdict.codes == [1000, 3018, 5000, 3019]
    assert verdict.delivered == 1
    assert verdict.failed_ids == [11, 13]
    assert verdict.failed_codes == [3018, 3019]
    assert verdict.failed_reasons[0] == "3018 inactive"
    assert len(verdict.failed_reasons[1]) == outcomes.REASON_LENGTH
    assert verdict.again == [12]
    assert not verdict.quiet_hours
    assert verdict.failed_by_reason == {"3018": 1, "3019": 1}


def test_an_answer_out_of_order_is_matched_by_id_and_the_missing_go_again() -> None:
    result = BatchResult(BATCH.id, [12, 10], [3018, 1000], {12: "inactive"})

    verdict = outcomes.judge([10, 11, 12], result)

    assert verdict.codes == [1000, 5000, 3018]
    assert verdict.again == [11]
    assert verdict.failed_ids == [12]


def test_brand_quiet_hours_are_sent_again_and_say_so() -> None:
    verdict = outcomes.judge([10, 11], BatchResult(BATCH.id, [10, 11], [3022, 1000]))

    assert (verdict.again, verdict.quiet_hours) == ([10], True)


def test_a_refused_request_fails_everyone_with_its_status() -> None:
    result = outcomes.refused(BATCH.id, [10, 11], 400, "bad request")

    verdict = outcomes.judge([10, 11], result)

    assert verdict.failed_codes == [400, 400]
    assert verdict.failed_reasons == ["400 bad request"] * 2


def test_the_settlement_carries_the_follow_up_and_the_event_the_batch_seq() -> None:
    verdict = outcomes.judge([10, 11, 12], BatchResult(BATCH.id, [10, 11, 12], [1000, 5000, 5000]))
    due = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    then = outcomes.follow_up(verdict, f"{ALERT}:3:8", 8, due)

    settled = outcomes.settlement(BATCH, ALERT, 3, [10, 11, 12], verdict, then)
    event = outcomes.delivery_event(BATCH, ALERT, 3, "public", [10, 11, 12], verdict)

    assert (then.first_id, then.last_id, then.subscriber_ids) == (11, 12, (11, 12))
    assert settled.follow_up is not None
    assert (settled.follow_up.batch_id, settled.follow_up.not_before) == (then.id, due)
    assert (settled.sent, settled.delivered, settled.last_id) == (3, 1, 12)
    assert event["seq"] == 7
    assert (event["delivered"], event["failed"], event["result_codes"]) == (1, 0, verdict.codes)


def test_a_settlement_moves_the_shard_to_the_range_end_when_told() -> None:
    verdict = outcomes.judge([], BatchResult(BATCH.id, [], []))

    settled = outcomes.settlement(BATCH, ALERT, 3, [], verdict, None, last_id=BATCH.last_id)

    assert (settled.sent, settled.last_id, settled.follow_up) == (0, 20, None)
