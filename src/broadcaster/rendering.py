"""What one batch says and to whom: its recipients with their tracked links, and the request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from broadcaster.providers.base import OutgoingBatch, Recipients
from broadcaster.records import AlertInfo
from common.kakao_limits import message_type
from common.messages import Channel
from common.tokens import TokenSigner


class Renderer:
    """Renders the batches of one alert: every link carries a token signed for the alert."""

    def __init__(
        self, info: AlertInfo, signer: TokenSigner, public_base_url: str, token_ttl_days: int
    ) -> None:
        self.info = info
        expires = int(info.created_at.timestamp()) + token_ttl_days * 86400
        self._sign = signer.signer_for(info.id, expires).sign
        self._link_base = public_base_url.rstrip("/") + "/r/"

    def recipients(self, rows: Sequence[Sequence[Any]]) -> Recipients:
        """Rows of (subscriber id, recipient number), each with their tracked link."""
        return Recipients.render(rows, self._link_base, self._sign)

    def outgoing(
        self, batch_id: str, recipients: Recipients, channel: Channel = "kakao"
    ) -> OutgoingBatch:
        """The provider request of a batch: the alert's message to `recipients`, as a
        KakaoTalk message or as the SMS/LMS the gateway composed."""
        info = self.info
        if channel == "sms":
            if info.sms is None:
                raise ValueError(f"Alert {info.id} has no SMS text for batch {batch_id}.")
            return OutgoingBatch(
                batch_id=batch_id,
                alert_id=info.id,
                category=info.category,
                message_type=info.sms.kind,
                title=info.sms.subject,
                body=info.sms.text,
                buttons=(),
                recipients=recipients,
            )
        return OutgoingBatch(
            batch_id=batch_id,
            alert_id=info.id,
            category=info.category,
            message_type=message_type(info.category),
            title=info.title,
            body=info.body,
            buttons=info.buttons,
            recipients=recipients,
        )
