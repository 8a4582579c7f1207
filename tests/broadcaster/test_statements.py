"""The settlement statement's parameters: a list per batch, and a row per recipient for the
failures, follow-ups and fallbacks (the statement itself is proven against PostgreSQL by the
pipe and broadcast tests)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from broadcaster.records import FollowUp, Settlement
from broadcaster.statements import settle_parameters
from common import packing

ALERT = uuid.uuid4()
LATER = datetime(2026, 12, 8, 8, 0, tzinfo=UTC)


def _settlement(
    batch_id: str, sent_ids: list[int], codes: list[int], **extra: object
) -> Settlement:
    fields: dict[str, object] = {
        "batch_id": batch_id,
        "alert_id": ALERT,
        "shard_no": 3,
        "last_id": sent_ids[-1],
        "sent": len(sent_ids),
        "delivered": codes.count(1000),
        "failed_ids": [],
        "failed_codes": [],
        "failed_reasons": [],
        "follow_up": None,
        "sent_ids": sent_ids,
        "codes": codes,
    } | extra
    return Settlement(**fields)  # type: ignore[arg-type]


def test_a_delivered_batch_has_a_row_and_no_recipient_rows() -> None:
    params = settle_parameters(ALERT, [_settlement("a:3:0", [1, 2, 3], [1000, 1000, 1000])])

    assert params[0] == ALERT
    # batch ids, shards, last ids, sent, delivered, failed
    assert params[1:7] == (["a:3:0"], [3], [3], [3], [3], [0])
    # no follow-up: its id, seq and time are None
    assert params[7:10] == ([None], [None], [None])
    # failures (batch, subscriber, code, reason) and held recipients (batch, subscriber): none
    assert params[10:16] == ([], [], [], [], [], [])
    # the record of who got it: the ids as one run, the codes with no exception
    assert params[16:19] == (["a:3:0"], [packing.ids([1, 2, 3])], [b""])
    # no fallback batch, no fallback recipients
    assert params[19:] == ([None], [None], [None], [], [])


def test_failures_follow_ups_and_fallbacks_are_a_row_per_recipient() -> None:
    failed = _settlement(
        "a:3:0",
        [10, 11, 12, 13],
        [1000, 3018, 5000, 3019],
        failed_ids=[11],
        failed_codes=[3018],
        failed_reasons=["3018 inactive"],
        follow_up=FollowUp("a:3:5", 5, (12,), LATER),
        fallback=FollowUp("a:3:6", 6, (13,), LATER),
    )
    clean = _settlement("a:3:1", [20, 22], [1000, 1000])

    params = settle_parameters(ALERT, [failed, clean])

    assert params[1] == ["a:3:0", "a:3:1"]
    assert params[6] == [1, 0]  # failed per batch
    assert params[7:10] == (["a:3:5", None], [5, None], [LATER, None])
    assert params[10:14] == (["a:3:0"], [11], [3018], ["3018 inactive"])
    assert params[14:16] == (["a:3:5"], [12])
    assert params[16] == ["a:3:0", "a:3:1"]
    assert packing.from_ids(params[17][0]) == [10, 11, 12, 13]
    assert packing.from_ids(params[17][1]) == [20, 22]
    assert packing.from_codes(params[18][0], 4) == [1000, 3018, 5000, 3019]
    assert params[19:22] == (["a:3:6", None], [6, None], [LATER, None])
    assert params[22:] == (["a:3:6"], [13])
