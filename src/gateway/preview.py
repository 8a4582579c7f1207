"""What an alert would do if it were created now, without storing anything.

`POST /v1/alerts:preview` answers with the active subscribers it reaches per district, the
message as the recipient sees it (title, body and buttons as the provider receives them)
counted against the dealer's limits (`common.kakao_limits`), warnings, and how long the
broadcast takes at the configured send rate. The rules are the broadcaster's own: the
quiet hours (`common.quiet_hours`) and the send rate come from `common.sending`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol, cast

from pydantic import BaseModel, Field

from common.kakao_limits import (
    MAX_BUTTON_NAME,
    MAX_BUTTONS,
    MAX_CONTENT,
    MAX_LINK,
    MAX_TITLE,
    MessageType,
    message_type,
)
from common.messages import Button, Category
from common.models import Alert
from common.sending import SendingSettings
from common.sms_text import SmsMessage
from gateway.audiences import Reach

WarningCode = Literal["quiet_hours", "send_at_past", "expires_before_end", "not_broadcast"]


class Counted(BaseModel):
    """A length in characters against the dealer's limit."""

    length: int
    limit: int


class ShownButton(BaseModel):
    """A button as sent; `#{link}` is each recipient's own tracked link."""

    name: str
    link: str
    name_chars: Counted
    link_chars: Counted


class ShownMessage(BaseModel):
    """The message as the provider receives it, with its character counts."""

    message_type: MessageType
    title: str
    body: str
    buttons: list[ShownButton]
    title_chars: Counted
    body_chars: Counted
    button_count: Counted


class DistrictReach(BaseModel):
    """Active subscribers the alert reaches in one district (null: no district)."""

    district: str | None
    recipients: int


class PreviewWarning(BaseModel):
    """Something the author should know before sending; the alert is still accepted."""

    code: WarningCode
    message: str


class Estimate(BaseModel):
    """When the broadcast starts and, at the configured send rate, how long it takes."""

    starts_at: datetime = Field(description="Now, the send time, or the end of quiet hours.")
    rate_messages_per_second: float | None = Field(
        description="ALLIM_BROADCASTER_RATE_MESSAGES_PER_SECOND; null when none is configured."
    )
    seconds: float | None = Field(description="Recipients / rate; null without a rate.")
    ends_at: datetime | None
    note: str


class ShownSms(BaseModel):
    """The SMS or LMS those KakaoTalk refuses get, with its length as carriers count it."""

    kind: Literal["SMS", "LMS"]
    subject: str = Field(description="The LMS subject (none for an SMS).")
    text: str = Field(description="`#{link}` stands for each recipient's tracked link.")
    bytes: Counted = Field(description="CP949 bytes (a Hangul syllable is 2), link included.")
    fallback_codes: list[int] = Field(description="The KakaoTalk codes that send it.")


class AlertPreview(BaseModel):
    """The answer of `POST /v1/alerts:preview` and `GET /v1/alerts/{id}/preview`."""

    recipients: int
    by_district: list[DistrictReach]
    message: ShownMessage
    sms: ShownSms | None = Field(
        None, description="The SMS/LMS fallback; null when the alert has none."
    )
    warnings: list[PreviewWarning]
    estimate: Estimate


class Draft(Protocol):
    """What a preview reads of an alert: a create's body (`AlertCreate`) or a stored one."""

    @property
    def title(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def category(self) -> Category: ...
    @property
    def send_at(self) -> datetime | None: ...
    @property
    def expires_at(self) -> datetime | None: ...
    def message_buttons(self) -> list[Button]:
        """The buttons as sent, allim's tracked 'read more' included."""
        ...


@dataclass(frozen=True)
class Stored:
    """A stored alert as a `Draft`: what an approver previews."""

    title: str
    body: str
    category: Category
    send_at: datetime | None
    expires_at: datetime | None
    buttons: list[Button]

    @classmethod
    def of(cls, alert: Alert) -> Stored:
        """The draft of a stored alert (its buttons are stored as sent)."""
        return cls(
            title=alert.title,
            body=alert.body,
            category=cast(Category, alert.category),
            send_at=alert.send_at,
            expires_at=alert.expires_at,
            buttons=[Button.model_validate(b) for b in alert.buttons],
        )

    def message_buttons(self) -> list[Button]:
        """The buttons as stored, which is as sent."""
        return self.buttons


def build(
    alert: Draft,
    reach: Reach,
    settings: SendingSettings,
    now: datetime,
    hold: str | None = None,
    sms: ShownSms | None = None,
) -> AlertPreview:
    """The preview of `alert`, which reaches `reach`, if it were created at `now`."""
    warnings: list[PreviewWarning] = []
    if hold is not None:
        warnings.append(PreviewWarning(code="not_broadcast", message=hold))
    starts_at = now
    if alert.send_at is not None and alert.send_at > now:
        starts_at = alert.send_at
    elif alert.send_at is not None:
        warnings.append(
            PreviewWarning(
                code="send_at_past",
                message=f"send_at {alert.send_at.isoformat()} is in the past: "
                "the alert is accepted and sent now.",
            )
        )
    held_until = settings.quiet_hours().held_until(alert.category, starts_at)
    if held_until is not None:
        warnings.append(
            PreviewWarning(
                code="quiet_hours",
                message=f"A promotional alert starting at {starts_at.isoformat()} falls in the "
                f"quiet hours: it waits until {held_until.isoformat()}.",
            )
        )
        starts_at = held_until
    estimate = _estimate(reach.total, settings, starts_at)
    finish = estimate.ends_at or starts_at
    if alert.expires_at is not None and alert.expires_at < finish:
        warnings.append(
            PreviewWarning(
                code="expires_before_end",
                message=f"expires_at {alert.expires_at.isoformat()} is before the estimated "
                f"end {finish.isoformat()}: recipients not reached by then get nothing.",
            )
        )
    return AlertPreview(
        recipients=reach.total,
        by_district=[
            DistrictReach(district=district, recipients=count)
            for district, count in reach.by_district.items()
        ],
        message=_shown(alert),
        sms=sms,
        warnings=warnings,
        estimate=estimate,
    )


def shown_sms(message: SmsMessage, codes: Sequence[int]) -> ShownSms:
    """The preview's view of an alert's SMS or LMS."""
    return ShownSms(
        kind=message.kind,
        subject=message.subject,
        text=message.text,
        bytes=Counted(length=message.length, limit=message.limit),
        fallback_codes=list(codes),
    )


def _shown(alert: Draft) -> ShownMessage:
    buttons = alert.message_buttons()
    return ShownMessage(
        message_type=message_type(alert.category),
        title=alert.title,
        body=alert.body,
        buttons=[
            ShownButton(
                name=b.name,
                link=b.link,
                name_chars=Counted(length=len(b.name), limit=MAX_BUTTON_NAME),
                link_chars=Counted(length=len(b.link), limit=MAX_LINK),
            )
            for b in buttons
        ],
        title_chars=Counted(length=len(alert.title), limit=MAX_TITLE),
        body_chars=Counted(length=len(alert.body), limit=MAX_CONTENT),
        button_count=Counted(length=len(buttons), limit=MAX_BUTTONS),
    )


def _estimate(total: int, settings: SendingSettings, starts_at: datetime) -> Estimate:
    rate = settings.broadcaster_rate_messages_per_second
    if rate <= 0:
        return Estimate(
            starts_at=starts_at,
            rate_messages_per_second=None,
            seconds=None,
            ends_at=None,
            note="No send rate is configured (ALLIM_BROADCASTER_RATE_MESSAGES_PER_SECOND is "
            "0): the broadcast goes as fast as the provider accepts, so no duration is "
            "estimated.",
        )
    seconds = total / rate
    return Estimate(
        starts_at=starts_at,
        rate_messages_per_second=rate,
        seconds=seconds,
        ends_at=starts_at + timedelta(seconds=seconds),
        note=f"{total} recipients at {rate:g} messages/s.",
    )
