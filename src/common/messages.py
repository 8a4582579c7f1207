"""The payloads that cross Kafka between allim's services.

`alerts.requested` and `alerts.control` carry these models as plain JSON values
(written by the gateway's outbox); `broadcast.shards*` carry `ShardTask`. The CloudEvents
on `deliveries`, `alerts.lifecycle`, `engagement` and `alerts.stats` carry
`DeliveryBatchData`, `AlertLifecycleData`, `TapData` and `AlertStatsData` as their data.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.kakao_limits import MAX_BUTTON_NAME, MAX_LINK

Category = Literal["emergency", "public", "promotional"]
# the channels a recipient may be reached by: KakaoTalk, or the SMS/LMS fallback
Channel = Literal["kakao", "sms"]


class Message(BaseModel):
    """Base of every Kafka payload: strict about unknown fields, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Button(Message):
    """A button under the message; `link` may hold `#{link}` for the tracked link."""

    name: str = Field(max_length=MAX_BUTTON_NAME)
    link: str = Field(max_length=MAX_LINK)


class Audience(Message):
    """Who gets the alert: everyone, or the active subscribers matching the filters."""

    all: bool = False
    districts: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    # exactly the subscribers frozen for this alert id in `alert_recipients` (a follow-up's)
    recipients_of: uuid.UUID | None = None


class AlertRequested(Message):
    """An alert accepted by the gateway, on `alerts.requested` (key: alert id)."""

    alert_id: uuid.UUID
    title: str
    body: str
    category: Category
    buttons: list[Button]
    audience: Audience
    send_at: datetime | None = None
    expires_at: datetime | None = None
    requested_at: datetime


class AlertControl(Message):
    """An operator's command about a running alert, on `alerts.control` (key: alert id)."""

    alert_id: uuid.UUID
    action: Literal["cancel", "pause", "resume"]
    requested_at: datetime


class ShardTask(Message):
    """One planned shard of an alert to send, on `broadcast.shards(.urgent)`.

    The shard's range and progress are in its row, which the sender reads when it starts.
    """

    # tasks published before a deploy carry fields dropped since (the shard's range and
    # count): they are read as they are, not dead-lettered
    model_config = ConfigDict(extra="ignore", frozen=True)

    alert_id: uuid.UUID
    shard_no: int
    category: Category


# the result codes of a delivered recipient: 1000, and 3005 (sent, its receipt not
# confirmed: counted delivered, never sent again)
DELIVERED_CODES = frozenset({1000, 3005})


class DeliveryBatchData(Message):
    """Data of a `dev.allim.delivery.batch` event: the settled fate of one batch."""

    alert_id: uuid.UUID
    batch_id: str
    shard_no: int
    seq: int
    category: Category
    delivered: int
    failed: int
    failed_by_reason: dict[str, int]
    # per recipient, in the batch's order: who, and the provider's result code (1000 is
    # delivered; 3022 and temporary failures go out again in a later batch of their own).
    # Two parallel lists, not a list of objects: a batch has up to 1,000 recipients and the
    # event is made for every batch.
    subscriber_ids: list[int]
    result_codes: list[int]
    # a test send's parent alert: set only on a test send's batches
    test_of: uuid.UUID | None = None
    # the channel the batch went by: KakaoTalk, or the SMS/LMS fallback
    channel: Channel = "kakao"

    @model_validator(mode="after")
    def _outcomes_pair_up(self) -> DeliveryBatchData:
        if len(self.subscriber_ids) != len(self.result_codes):
            raise ValueError(
                f"subscriber_ids has {len(self.subscriber_ids)} entries and result_codes "
                f"{len(self.result_codes)}: they must pair up."
            )
        return self


class AlertLifecycleData(Message):
    """Data of `dev.allim.alert.{started,progress,completed,cancelled,failed}` events."""

    alert_id: uuid.UUID
    status: str
    category: Category
    targeted: int
    delivered: int
    failed: int
    pending: int
    reason: str | None = None
    # a test send's parent alert (absent for a real broadcast)
    test_of: uuid.UUID | None = None


class TapData(Message):
    """Data of a `dev.allim.engagement.tap` event: one tap on a tracked link."""

    alert_id: uuid.UUID
    subscriber_id: int
    reader_id: str
    tapped_at: datetime


class ChannelStatsData(Message):
    """One channel's part of an alert's rollup; readers are those whose first tap was on a
    link this channel sent."""

    delivered: int
    failed: int
    readers: int
    read_rate: float | None


class AlertStatsData(Message):
    """Data of a `dev.allim.alert.stats` snapshot on the compacted `alerts.stats` topic."""

    alert_id: uuid.UUID
    category: str | None
    targeted: int
    delivered: int
    failed: int
    failed_by_reason: dict[str, int]
    readers: int
    first_readers: int
    forwarded_readers: int
    taps: int
    read_rate: float | None  # reports.figures.read_rate: null before any delivery
    forward_rate: float
    updated_at: datetime
    # KakaoTalk's figures, and the SMS/LMS fallback's once it has sent; they add up to the
    # totals above (a recipient SMS reached after KakaoTalk refused them is one delivered)
    channels: dict[Channel, ChannelStatsData] = {}
