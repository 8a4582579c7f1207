"""The broadcaster's records: the rows of alerts, shards and batches as the store reads and
writes them, and the settlement of a batch."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson

from common.messages import Audience, Button, Category, Channel


@dataclass(frozen=True)
class AlertInfo:
    """What a sender needs of an alert to render and address its batches."""

    id: uuid.UUID
    title: str
    body: str
    category: Category
    buttons: tuple[Button, ...]
    audience: Audience
    created_at: datetime
    expires_at: datetime | None = None
    # a test send's parent alert: its events say so
    test_of: uuid.UUID | None = None
    # the KakaoTalk codes that send it again by SMS/LMS, and what it says there
    fallback_codes: frozenset[int] = frozenset()
    sms: SmsText | None = None


@dataclass(frozen=True)
class ShardRow:
    """A shard as recorded by the planner, and how far its sending got."""

    alert_id: uuid.UUID
    shard_no: int
    first_id: int
    last_id: int
    status: str
    next_seq: int
    position: int  # the highest subscriber id already put in a range batch


@dataclass(frozen=True)
class SmsText:
    """An alert's SMS or LMS as the gateway composed it (`#{link}`: the recipient's link)."""

    kind: Literal["SMS", "LMS"]
    subject: str
    text: str


@dataclass(frozen=True)
class BatchRow:
    """A batch that was written but not settled: its fate is unknown, or it is held.

    A range batch (no `subscriber_ids`) is sent to the active subscribers of the audience
    in `first_id..last_id`; a follow-up lists its recipients.
    """

    id: str
    seq: int
    first_id: int
    last_id: int
    status: str = "sending"
    subscriber_ids: tuple[int, ...] | None = None
    not_before: datetime | None = None
    channel: Channel = "kakao"


@dataclass(frozen=True)
class FollowUp:
    """Recipients of a settled batch to send again later, in a batch of their own: by the
    same channel (a temporary failure, quiet hours), or by SMS/LMS (a fallback)."""

    batch_id: str
    seq: int
    subscriber_ids: tuple[int, ...]
    not_before: datetime


@dataclass(frozen=True)
class Settlement:
    """The settled fate of one batch; `Store.settle` writes several in one statement."""

    batch_id: str
    alert_id: uuid.UUID
    shard_no: int
    last_id: int
    sent: int
    delivered: int
    failed_ids: Sequence[int]
    failed_codes: Sequence[int]
    failed_reasons: Sequence[str]
    follow_up: FollowUp | None
    # who the request went to, and the dealer's code for each (parallel): the batch's
    # durable record of who got it
    sent_ids: Sequence[int] = ()
    codes: Sequence[int] = ()
    fallback: FollowUp | None = None  # KakaoTalk refused them: SMS/LMS sends it again


@dataclass(frozen=True)
class Counters:
    """An alert's status and counters, and why it ended when the store read that too."""

    status: str
    category: Category
    targeted: int
    delivered: int
    failed: int
    reason: str | None = None  # `alerts.status_reason`: the gateway's words for a cancel
    test_of: uuid.UUID | None = None  # a test send's parent alert
    paused: bool = False  # an operator holds it paused (when the store read that)


def counters_of(row: Mapping[str, Any], category: Category | None = None) -> Counters:
    """The counters of an `alerts` row (its status, counters, and the optional columns
    `category`, `status_reason` and `test_of` when the statement read them)."""
    return Counters(
        row["status"],
        category if category is not None else row["category"],
        row["targeted"],
        row["delivered"],
        row["failed"],
        row.get("status_reason"),
        row.get("test_of"),
        bool(row.get("paused")),
    )


def alert_info(row: Mapping[str, Any]) -> AlertInfo:
    """The `AlertInfo` of an `alerts` row (`buttons` and `audience` read as text)."""
    buttons = orjson.loads(row["buttons"]) or []
    return AlertInfo(
        id=row["id"],
        title=row["title"],
        body=row["body"],
        category=row["category"],
        buttons=tuple(Button.model_validate(b) for b in buttons),
        audience=Audience.model_validate(orjson.loads(row["audience"])),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        test_of=row["test_of"],
        fallback_codes=frozenset(row["fallback_codes"] or ()),
        sms=SmsText(row["sms_kind"], row["sms_subject"] or "", row["sms_text"])
        if row["sms_kind"] and row["sms_text"]
        else None,
    )


# what planning an alert did: wrote its shards, published an earlier plan's unfinished ones
# again, left it for its `send_at`, failed it as expired, or nothing (cancelled, finished, no
# such alert)
PlanOutcome = Literal[
    "planned", "republished", "scheduled", "expired", "cancelled", "finished", "missing"
]


@dataclass(frozen=True)
class PlanState:
    """An alert's row as the planner reads it, locked, to decide what planning does."""

    status: str
    send_at: datetime | None
    expires_at: datetime | None


@dataclass(frozen=True)
class AlertPlan:
    """What planning one alert committed: its outcome, counters and the shards to publish."""

    outcome: PlanOutcome
    category: Category | None = None
    counters: Counters | None = None
    shards: tuple[int, ...] = ()  # shard numbers whose tasks go out (unfinished ones)


@dataclass(frozen=True)
class PendingShard:
    """A shard of a sending alert that nobody started."""

    alert_id: uuid.UUID
    shard_no: int
    category: Category


@dataclass(frozen=True)
class BucketLease:
    """What one lease of a shared rate bucket returned."""

    rate: float  # the bucket's rate now
    wait: float  # seconds until the leased tokens may be spent (a pause, or the debt)
    paused: bool  # paused: nothing was taken, lease again after `wait`
    probing: bool  # never cut: a learned rate still grows fast (slow start)
