"""The alert API's request and response bodies.

The provider's limits (`common.kakao_limits`) bound the title, body and buttons. allim
appends its own tracked "read more" button (`READ_MORE`, whose link is the `#{link}`
template variable the sender fills with each recipient's tracking link),
so an operator may give at most `MAX_OPERATOR_BUTTONS` = 4.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from common.kakao_limits import MAX_BUTTON_NAME, MAX_BUTTONS, MAX_CONTENT, MAX_LINK, MAX_TITLE
from common.messages import Audience, Button, Category
from gateway.fields import Filled, JsonInteger, Storable, Strict, Visible

MAX_OPERATOR_BUTTONS = MAX_BUTTONS - 1
READ_MORE = Button(name="자세히 보기", link="#{link}")

AlertStatus = Literal[
    "pending_approval",
    "paused",
    "rejected",
    "expired",
    "scheduled",
    "queued",
    "sending",
    "completed",
    "cancelled",
    "failed",
    "not_broadcast",
]
# statuses after which nothing about the alert changes any more
TERMINAL_STATUSES: frozenset[str] = frozenset(
    {"completed", "cancelled", "failed", "not_broadcast", "rejected", "expired"}
)
# why an alert waited for approval, or why it did not
Approval = Literal["required", "off", "exempt", "machine_feed", "test"]


# the validation context key of the earliest accepted send_at (the API sets it, CAP does not:
# a CAP `effective` in the past means the alert is in effect now)
SEND_AT_FLOOR = "send_at_floor"
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), Filled]


class ButtonIn(Strict):
    """An operator's button: a name and an http(s) link."""

    name: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_BUTTON_NAME),
        Storable,
        Visible,
    ]
    link: Annotated[
        str,
        StringConstraints(
            strip_whitespace=True,
            min_length=1,
            max_length=MAX_LINK,
            pattern=r"^https?://[^\s\x00-\x1f\x7f]+$",
        ),
        Storable,
    ]


def _audience_schema(schema: dict[str, Any]) -> None:
    # what `_all_as_string` and `_one_kind` accept, in JSON Schema, so a client generated
    # from the document refuses an empty audience or one that is both kinds
    target = {key: schema.pop(key) for key in ("type", "properties", "additionalProperties")}
    target["anyOf"] = [
        {
            "properties": {
                "all": {"const": True},
                "districts": {"maxItems": 0},
                "tags": {"maxItems": 0},
            },
            "required": ["all"],
        },
        {
            "properties": {"all": {"const": False}, "districts": {"minItems": 1}},
            "required": ["districts"],
        },
        {
            "properties": {"all": {"const": False}, "tags": {"minItems": 1}},
            "required": ["tags"],
        },
    ]
    schema["anyOf"] = [{"type": "string", "const": "all"}, target]
    schema["examples"] = ["all", {"districts": ["장안구"], "tags": ["bus"]}]


class AudienceIn(Strict):
    """`"all"`, or a filter: active subscribers in one of `districts` (when given) and
    carrying one of `tags` (when given)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_audience_schema)

    all: StrictBool = Field(False, description='Everyone; the string "all" means the same.')
    districts: list[Name] = Field(default_factory=list, max_length=500)
    tags: list[Name] = Field(default_factory=list, max_length=500)
    recipients_of: None = Field(
        None,
        description="Set by allim on a follow-up's frozen audience; an alert's audience posted "
        "back as it was shown carries null here, which is taken as absent.",
    )

    @model_validator(mode="before")
    @classmethod
    def _all_as_string(cls, value: Any) -> Any:
        return {"all": True} if value == "all" else value

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if self.all and (self.districts or self.tags):
            raise ValueError("Give either all, or districts/tags, not both.")
        if not self.all and not self.districts and not self.tags:
            raise ValueError('Audience is empty: give "all", or districts and/or tags.')
        return self

    def to_message(self) -> Audience:
        """The audience as it crosses Kafka."""
        return Audience(
            all=self.all, districts=sorted(set(self.districts)), tags=sorted(set(self.tags))
        )


Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE),
    Storable,
    Visible,
]
Body = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_CONTENT),
    Storable,
    Visible,
]


class FallbackIn(Strict):
    """Whether those KakaoTalk refuses get the alert by SMS/LMS, and how."""

    enabled: StrictBool | None = Field(
        None,
        description="On or off for this alert; absent: as the deployment sets it for the "
        "category (ALLIM_GATEWAY_FALLBACK_CATEGORIES: emergency and public by default).",
    )
    codes: list[Annotated[int, Field(ge=1000, le=9999), JsonInteger]] | None = Field(
        None,
        max_length=20,
        description="The KakaoTalk codes that send it again (default "
        "ALLIM_GATEWAY_FALLBACK_CODES: 3018, 3019, 3020).",
    )
    only_sms: StrictBool = Field(
        False, description="An SMS (90 bytes) or nothing: a longer text is refused, not an LMS."
    )
    unencodable: Literal["refuse", "replace"] = Field(
        "refuse",
        description="A character SMS cannot carry (an emoji): refuse the alert, or send `?`.",
    )


class AlertCreate(Strict):
    """An alert to broadcast."""

    title: Title
    body: Body
    category: Category
    buttons: list[ButtonIn] = Field(
        default_factory=list,
        max_length=MAX_OPERATOR_BUTTONS,
        description="Up to 4: allim adds the tracked 'read more' button as the fifth.",
    )
    audience: AudienceIn
    send_at: AwareDatetime | None = Field(
        None,
        description=(
            "When to start sending (with a time zone); now when absent. A time more than "
            "`ALLIM_GATEWAY_SEND_AT_MAX_PAST_MINUTES` (default 60) in the past is refused."
        ),
    )
    fallback: FallbackIn | None = Field(
        None, description="SMS/LMS for those KakaoTalk refuses; absent: the deployment's."
    )
    deliver_within: Annotated[int, Field(ge=1, le=7 * 24 * 3600), JsonInteger] | None = Field(
        None,
        description=(
            "Seconds from the start of sending within which every recipient should have it; "
            "the status says `late` when the estimate misses it, and the broadcaster's "
            "`allim_broadcaster_alerts_late` gauge counts it."
        ),
    )
    expires_at: AwareDatetime | None = Field(
        None, description="After this the alert is not sent any more; must be in the future."
    )

    @field_validator("send_at")
    @classmethod
    def _not_long_past(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        floor = (info.context or {}).get(SEND_AT_FLOOR)
        if value is not None and floor is not None and value < floor:
            raise ValueError(
                f"send_at {value.isoformat()} is more than the allowed time in the past "
                f"(the earliest accepted now is {floor.isoformat()}); leave it out to send now."
            )
        return value

    @field_validator("expires_at")
    @classmethod
    def _expires_later(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None:
            return value
        if value <= datetime.now(UTC):
            raise ValueError("expires_at must be in the future.")
        send_at = info.data.get("send_at")
        if send_at is not None and value <= send_at:
            raise ValueError("expires_at must be after send_at.")
        return value

    def message_buttons(self) -> list[Button]:
        """The buttons as sent: the operator's, then allim's tracked 'read more'."""
        return [Button(name=b.name, link=b.link) for b in self.buttons] + [READ_MORE]


class AlertAccepted(BaseModel):
    """The answer to an accepted alert."""

    id: uuid.UUID
    status: AlertStatus
    status_url: str


class ChannelCounts(BaseModel):
    """What one channel settled of an alert."""

    delivered: int
    failed: int
    fallback: int = Field(
        0, description="For `kakao`: recipients it refused who were handed to SMS/LMS."
    )


class AlertPublic(BaseModel):
    """An alert, its progress and its read rate."""

    id: uuid.UUID
    status: AlertStatus
    status_reason: str | None
    title: str
    body: str
    category: Category
    buttons: list[Button]
    audience: Audience
    send_at: datetime | None
    expires_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    targeted: int = Field(description="Subscribers the broadcast addresses.")
    delivered: int = Field(description="Accepted by the provider.")
    failed: int = Field(description="Refused by the provider for good.")
    pending: int = Field(description="targeted - delivered - failed.")
    readers: int | None = Field(
        description="Distinct readers, as analytics counts them; null before any."
    )
    read_rate: float | None = Field(
        description="readers / delivered (may pass 1.0 through forwards); null when none."
    )
    cap_identifier: str | None = Field(description="The CAP identifier, for CAP alerts.")
    author: str | None = Field(description="The user who created it; null for older alerts.")
    approval: Approval = Field(
        description=(
            "`required`: it waits for (or had) an approver's decision; `off`: the deployment "
            "sends without approval; `exempt`: its category needs none; `machine_feed`: a "
            "machine feed's alert that skipped it; `test`: a test send."
        )
    )
    decided_by: str | None = Field(description="The approver who approved or rejected it.")
    decided_at: datetime | None = Field(description="When it was approved or rejected.")
    test_of: uuid.UUID | None = Field(
        description="For a test send: the alert whose message it sent to the test recipients."
    )
    parent_id: uuid.UUID | None = Field(
        description="For a follow-up: the alert it resends or corrects (`relation` says which)."
    )
    send_rate: float | None = Field(
        description="Recipients settled per second while it is sent: since the start, or over "
        "the last few seconds in the event stream."
    )
    eta: datetime | None = Field(
        description="When the last recipient is estimated to be settled at `send_rate`."
    )
    deliver_within: int | None = Field(description="The seconds promised, when given.")
    deadline: datetime | None = Field(description="started_at + deliver_within.")
    late: bool = Field(
        description="The deadline passed before the end, or the estimate says it will."
    )
    channels: dict[str, ChannelCounts] | None = Field(
        None,
        description="Delivered and failed per channel (`kakao`, `sms`) for one alert's read; "
        "a recipient KakaoTalk refused and SMS reached counts once, as delivered by `sms`. "
        "Null in lists.",
    )
    relation: Literal["resend", "correction", "update"] | None = Field(
        description="What this follow-up is to its parent."
    )


class AlertPage(BaseModel):
    """One page of alerts, newest first; pass `next_cursor` as `cursor` for the next."""

    items: list[AlertPublic]
    next_cursor: str | None
