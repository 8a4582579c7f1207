"""The database schema, as SQLAlchemy models. Migrations in `migrations/` create it.

Subscribers are streamed by keyset on their primary key (`id > :last ORDER BY id LIMIT n`);
the partial index `ix_subscribers_active_id` serves that walk for the active ones.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of every allim table."""


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Subscriber(Base):
    """A channel friend who receives alerts, addressed by their recipient number."""

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    recipient_no: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    district: Mapped[str | None] = mapped_column(String(64))
    tags: Mapped[list[str]] = mapped_column(
        ARRAY(String(64)), nullable=False, server_default=text("'{}'")
    )
    # active | opted_out
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="active")
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    opted_out_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_subscribers_active_id", "id", postgresql_where=text("status = 'active'")),
        Index(
            "ix_subscribers_district_id",
            "district",
            "id",
            postgresql_where=text("status = 'active'"),
        ),
        # every status: the gateway's audience check tells an unknown district from one
        # whose subscribers all opted out
        Index("ix_subscribers_district", "district"),
        Index("ix_subscribers_tags", "tags", postgresql_using="gin"),
    )


class Alert(Base):
    """One alert an operator asked to broadcast, with its lifecycle and counters."""

    __tablename__ = "alerts"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    request_hash: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(50), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    # emergency | public | promotional
    category: Mapped[str] = mapped_column(String(16), nullable=False)
    buttons: Mapped[list[dict[str, str]]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'")
    )
    # {"all": true} or {"districts": [...], "tags": [...]}
    audience: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    send_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # pending_approval | rejected | expired | scheduled | queued | sending | completed |
    # cancelled | failed | not_broadcast
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="queued")
    status_reason: Mapped[str | None] = mapped_column(Text)
    # CAP 1.2 origin, when the alert came as CAP: one alert per (sender, identifier, sent)
    cap_sender: Mapped[str | None] = mapped_column(String(255))
    cap_identifier: Mapped[str | None] = mapped_column(String(255))
    cap_sent: Mapped[str | None] = mapped_column(String(64))
    targeted: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    delivered: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    failed: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # who created it (NULL for alerts older than named users)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # required | machine_feed | exempt | off: why it waited for approval, or why not
    approval: Mapped[str] = mapped_column(String(16), nullable=False, server_default="off")
    # who approved or rejected it, and when
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # set while an operator holds the alert paused (the API shows `paused`)
    paused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # a follow-up's parent, and what it is to it: resend | correction | update
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("alerts.id", ondelete="CASCADE")
    )
    relation: Mapped[str | None] = mapped_column(String(16))
    # seconds the sender promised to deliver within (the estimate tells when it misses)
    deliver_within: Mapped[int | None] = mapped_column(Integer)
    # the KakaoTalk codes whose recipients get it again by SMS/LMS (NULL: no fallback), and
    # the SMS or LMS composed at creation (`#{link}`: each recipient's tracked link)
    fallback_codes: Mapped[list[int] | None] = mapped_column(ARRAY(Integer))
    sms_kind: Mapped[str | None] = mapped_column(String(3))
    sms_subject: Mapped[str | None] = mapped_column(String(80))
    sms_text: Mapped[str | None] = mapped_column(Text)
    # a test send's parent: the alert whose message went to the test recipients
    test_of: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("alerts.id", ondelete="CASCADE")
    )

    __table_args__ = (
        UniqueConstraint("cap_sender", "cap_identifier", "cap_sent", name="uq_alerts_cap"),
        Index("ix_alerts_created_at", "created_at"),
    )


class AlertRecipient(Base):
    """One subscriber of a follow-up's audience, frozen when the follow-up was created."""

    __tablename__ = "alert_recipients"

    alert_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True
    )
    subscriber_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class OutboxEntry(Base):
    """A Kafka record written in the same transaction as the change it announces."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(128), nullable=False)
    key: Mapped[str | None] = mapped_column(String(200))
    headers: Mapped[dict[str, str]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'")
    )
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = _now()
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_outbox_unsent", "id", postgresql_where=text("sent_at IS NULL")),)


class Shard(Base):
    """A keyset range of subscriber ids of one alert, and how far its sending got."""

    __tablename__ = "shards"

    alert_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True
    )
    shard_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_id: Mapped[int] = mapped_column(BigInteger, nullable=False)  # inclusive
    last_id: Mapped[int] = mapped_column(BigInteger, nullable=False)  # inclusive
    # pending | sending | done | cancelled
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="pending")
    # highest subscriber id whose batch is settled: the shard's settled progress, for whoever
    # reads it; a sender resumes from the shard's batch rows, which also hold those written
    # `sending` and not settled yet
    checkpoint_id: Mapped[int | None] = mapped_column(BigInteger)
    sent: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    delivered: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    failed: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    updated_at: Mapped[datetime] = _now()


class Batch(Base):
    """One provider request: up to 1,000 recipients, with a deterministic id.

    The id (`{alert}:{shard}:{seq}`) is the request's `X-Idempotency-Key` and
    `senderGroupingKey`. The row is written as `sending` before the request and settled
    after it, so a sender that restarts knows which batches have an unknown fate.
    """

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    alert_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False
    )
    shard_no: Mapped[int] = mapped_column(Integer, nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    first_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    # sending | done | held (a follow-up not sent yet: waits for `not_before`)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="sending")
    # a follow-up batch (5000 retry, 3022 hold) lists its recipients; a range batch has none
    subscriber_ids: Mapped[list[int] | None] = mapped_column(ARRAY(BigInteger))
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    failed: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    created_at: Mapped[datetime] = _now()
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # kakao | sms: the channel the batch goes by (a fallback batch lists its recipients)
    channel: Mapped[str] = mapped_column(String(8), nullable=False, server_default="kakao")
    # once settled: who the request went to, and the dealer's code for each (parallel)
    # packed small (`common.packing`; allim_ids, allim_codes in SQL)
    sent_ids: Mapped[bytes | None] = mapped_column(LargeBinary)
    result_codes: Mapped[bytes | None] = mapped_column(LargeBinary)

    __table_args__ = (Index("ix_batches_alert_shard_status", "alert_id", "shard_no", "status"),)


class DeliveryFailure(Base):
    """A recipient that did not get an alert, and why."""

    __tablename__ = "delivery_failures"

    alert_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True
    )
    subscriber_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(100), nullable=False)
    result_code: Mapped[int] = mapped_column(Integer, nullable=False)
    reason: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = _now()


class User(Base):
    """A named person with one role; a password to sign in, and the sign-in throttle."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    # viewer | operator | approver | admin
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    # argon2; NULL: this user signs in with keys only
    password_hash: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # wrong passwords in a row, and until when the account is locked
    failed_signins: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    last_failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebSession(Base):
    """A signed-in person's session; the id is the SHA-256 of the cookie's token."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    csrf_token: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = _now()
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    """An API key of a user, stored as a hash of the key."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # the key's label: who or what uses it
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    # a system's key (a CAP source): its alerts may skip approval where the deployment allows
    machine_feed: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default=text("false")
    )
    prefix: Mapped[str] = mapped_column(String(16), nullable=False, unique=True)
    key_hash: Mapped[str] = mapped_column(String(128), nullable=False)
    created_at: Mapped[datetime] = _now()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """One operator action: who, when, what, on which alert. A trigger refuses changes."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = _now()
    # the user's name, `cli:<system user>` for a server command, `allim` for the gateway
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    user_id: Mapped[int | None] = mapped_column(Integer)
    key_id: Mapped[int | None] = mapped_column(Integer)
    # alert.create | alert.cancel | key.create | key.revoke | subscriber.opt_out | ...
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    alert_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    detail: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'")
    )

    __table_args__ = (
        Index(
            "ix_audit_log_alert_id", "alert_id", "id", postgresql_where=text("alert_id IS NOT NULL")
        ),
        Index("ix_audit_log_actor_id", "actor", "id"),
        Index("ix_audit_log_action_id", "action", "id"),
    )


class AlertStats(Base):
    """Analytics rollup of one alert: deliveries, readers, forwards."""

    __tablename__ = "alert_stats"

    alert_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    category: Mapped[str | None] = mapped_column(String(16))
    targeted: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    delivered: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    failed: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    failed_by_reason: Mapped[dict[str, int]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'")
    )
    readers: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    first_readers: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    forwarded_readers: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    taps: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    # the SMS/LMS fallback's share of the counts above (KakaoTalk's is the rest)
    sms_delivered: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    sms_failed: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    sms_readers: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    # the latest `alerts.lifecycle` status, and when the broadcast started and ended
    status: Mapped[str | None] = mapped_column(String(16))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_delivery_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_delivery_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = _now()


class AlertReadsMinute(Base):
    """Reads of one alert in one minute: the time series behind the read-rate chart."""

    __tablename__ = "alert_reads_minute"

    alert_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    minute: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    reads: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    new_readers: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")


class AlertReader(Base):
    """A distinct reader of an alert: the exact count of readers is the count of these rows."""

    __tablename__ = "alert_readers"

    alert_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    # identifiers: byte order (COLLATE "C") keeps index inserts and sorts cheap
    reader_id: Mapped[str] = mapped_column(String(64, collation="C"), primary_key=True)
    # the subscriber whose token this reader first tapped, and whether they were its first reader
    subscriber_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    forwarded: Mapped[bool] = mapped_column(nullable=False)
    first_read_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class TokenFirstReader(Base):
    """The first reader of each tracking token; a different reader later is a forward."""

    __tablename__ = "token_first_readers"

    alert_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    reader_id: Mapped[str] = mapped_column(String(64), nullable=False)


class AlertSmsReached(Base):
    """A subscriber the SMS/LMS fallback delivered an alert to: their link's readers count
    for that channel."""

    __tablename__ = "alert_sms_reached"

    alert_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class ProcessedEvent(Base):
    """CloudEvents ids already applied by a consumer, so redelivery never double counts."""

    __tablename__ = "processed_events"

    # identifiers: byte order (COLLATE "C") keeps index inserts cheap
    consumer: Mapped[str] = mapped_column(String(32, collation="C"), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(100, collation="C"), primary_key=True)
    processed_at: Mapped[datetime] = _now()


class RateBucket(Base):
    """A token bucket shared by every sender process: the global send-rate budget."""

    __tablename__ = "rate_buckets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    tokens: Mapped[float] = mapped_column(nullable=False)
    rate: Mapped[float] = mapped_column(nullable=False)
    burst: Mapped[float] = mapped_column(nullable=False)
    # when the bucket may be drawn again after a 429 asked everyone to wait
    paused_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refilled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # when the rate was last cut (429 or 5xx); cuts within a cool-down of it count once
    adjusted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
