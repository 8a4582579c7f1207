"""Builders of the facts one poll of the analytics consumer holds: taps, delivered batches,
lifecycle events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from analytics.records import Decoded, Delivery, Lifecycle, Tap
from common.messages import DELIVERED_CODES, AlertLifecycleData, Channel, DeliveryBatchData

T0 = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)


class Facts:
    """Builders of the facts a poll holds."""

    @staticmethod
    def tap(
        alert: uuid.UUID,
        subscriber: int,
        reader: str,
        at: datetime = T0,
        event_id: str | None = None,
    ) -> Tap:
        """A tap by `reader` on the link sent to `subscriber`."""
        return Tap(event_id or str(uuid.uuid4()), alert, subscriber, reader, at)

    @staticmethod
    def delivery(
        alert: uuid.UUID,
        seq: int,
        delivered: int,
        failed_by_reason: dict[str, int] | None = None,
        at: datetime = T0,
    ) -> Delivery:
        """A settled batch of `alert` with these counts; analytics sums counts, not outcomes."""
        reasons = failed_by_reason or {}
        data = Facts._batch(alert, seq, delivered, reasons, {1: 1000}, "kakao")
        return Delivery(data.batch_id, at, data)

    @staticmethod
    def sms_delivery(alert: uuid.UUID, seq: int, codes: dict[int, int]) -> Delivery:
        """A settled SMS/LMS fallback batch of `alert`: subscriber id -> the dealer's code."""
        delivered = sum(code in DELIVERED_CODES for code in codes.values())
        reasons: dict[str, int] = {}
        for code in codes.values():
            if code not in DELIVERED_CODES:
                reasons[str(code)] = reasons.get(str(code), 0) + 1
        data = Facts._batch(alert, seq, delivered, reasons, codes, "sms")
        return Delivery(data.batch_id, T0, data)

    @staticmethod
    def _batch(
        alert: uuid.UUID,
        seq: int,
        delivered: int,
        reasons: dict[str, int],
        codes: dict[int, int],
        channel: Channel,
    ) -> DeliveryBatchData:
        return DeliveryBatchData(
            alert_id=alert,
            batch_id=f"{alert}:0:{seq}",
            shard_no=0,
            seq=seq,
            category="public",
            delivered=delivered,
            failed=sum(reasons.values()),
            failed_by_reason=reasons,
            subscriber_ids=list(codes),
            result_codes=list(codes.values()),
            channel=channel,
        )

    @staticmethod
    def lifecycle(
        alert: uuid.UUID, kind: str, targeted: int, at: datetime = T0, status: str = "sending"
    ) -> Lifecycle:
        """An `alerts.lifecycle` event of type `dev.allim.alert.<kind>`."""
        data = AlertLifecycleData(
            alert_id=alert,
            status=status,
            category="public",
            targeted=targeted,
            delivered=0,
            failed=0,
            pending=targeted,
        )
        return Lifecycle(str(uuid.uuid4()), f"dev.allim.alert.{kind}", at, data)

    @staticmethod
    def decoded(*facts: Tap | Delivery | Lifecycle) -> Decoded:
        """A poll holding `facts` in this order."""
        out = Decoded()
        for fact in facts:
            if isinstance(fact, Tap):
                out.taps.append(fact)
            elif isinstance(fact, Delivery):
                out.deliveries.append(fact)
            else:
                out.lifecycle.append(fact)
        return out
