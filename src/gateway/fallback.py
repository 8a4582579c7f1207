"""Whether an alert falls back to SMS/LMS for those KakaoTalk refuses, and what it says there.

Decided when the alert is created, from the deployment's settings and the alert's own
`fallback` field: the categories that fall back (emergency and public by default, never
promotional unless the alert asks), and the KakaoTalk codes that send it again (3018
inactive, 3019 not a KakaoTalk user, 3020 notifications blocked). The text is composed then
(`common.sms_text`) and stored with the alert, so the operator sees in the preview exactly
what the senders will send, and a text SMS cannot carry is refused at creation.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.sms_text import SmsMessage, SmsTextError, compose
from gateway.config import GatewaySettings
from gateway.schemas import AlertCreate


@dataclass(frozen=True)
class FallbackPlan:
    """The codes that send the alert again by SMS/LMS, and its SMS or LMS."""

    codes: tuple[int, ...]
    message: SmsMessage


def plan(alert: AlertCreate, settings: GatewaySettings) -> FallbackPlan | None:
    """The alert's fallback, or None when it has none; `SmsTextError` when its text cannot
    go by SMS/LMS as it asks."""
    asked = alert.fallback
    enabled = asked.enabled if asked is not None and asked.enabled is not None else None
    if enabled is None:
        enabled = alert.category in settings.gateway_fallback_categories
    if not enabled:
        return None
    codes = (
        tuple(sorted(set(asked.codes)))
        if asked and asked.codes
        else tuple(sorted(set(settings.gateway_fallback_codes)))
    )
    message = compose(
        alert.title,
        alert.body,
        link_base=settings.public_base_url.rstrip("/") + "/r/",
        promotional=alert.category == "promotional",
        opt_out_number=settings.gateway_sms_opt_out_number,
        only_sms=asked.only_sms if asked else False,
        on_unencodable=asked.unencodable if asked else "refuse",
    )
    return FallbackPlan(codes, message)


def refusal(exc: SmsTextError) -> list[dict[str, str]]:
    """The 422's errors for a text SMS cannot carry."""
    return [{"field": "fallback", "message": str(exc)}]
