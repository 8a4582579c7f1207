"""Subscribers: the recipient-number rule, upsert, opt-out, look-up and counts.

Recipient numbers are Korean mobile numbers written as digits only: `01` then one of
`0 1 6 7 8 9` (010, 011, 016, 017, 018, 019), then 7 or 8 digits, so 10 or 11 digits in
all (`01012345678`, `0111234567`). Hyphens, spaces and `+82` are refused rather than
guessed at, so one person never becomes two rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Boolean, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert

from common.models import Subscriber
from gateway.fields import unstorable

RECIPIENT_PATTERN = r"^01[016789][0-9]{7,8}$"
RECIPIENT_RULE = (
    "digits only, a Korean mobile number: 010, 011, 016, 017, 018 or 019 "
    "followed by 7 or 8 digits (10 or 11 digits in all)"
)
DISTRICT_MAX = 64  # subscribers.district is VARCHAR(64)
TAG_MAX = 64  # subscribers.tags is VARCHAR(64)[]
TAGS_MAX = 32

_RECIPIENT = re.compile(RECIPIENT_PATTERN)


class SubscriberError(ValueError):
    """A subscriber field that breaks the rules; the message names the field."""


def check_recipient(recipient_no: str) -> str:
    """`recipient_no` when it follows the rule; `SubscriberError` otherwise."""
    if not _RECIPIENT.fullmatch(recipient_no):
        raise SubscriberError(f"recipient_no '{recipient_no[:40]}' is not {RECIPIENT_RULE}.")
    return recipient_no


def check_district(district: str | None) -> str | None:
    """The district, None when blank; `SubscriberError` when it is too long."""
    if district is None:
        return None
    district = district.strip()
    reason = unstorable(district)
    if reason is not None:
        raise SubscriberError(f"district {reason}.")
    if len(district) > DISTRICT_MAX:
        raise SubscriberError(f"district is longer than {DISTRICT_MAX} characters.")
    return district or None


def check_tags(tags: list[str]) -> list[str]:
    """The tags trimmed, blanks dropped, duplicates removed in order; errors name the rule."""
    cleaned: list[str] = []
    for tag in tags:
        tag = tag.strip()
        if not tag or tag in cleaned:
            continue
        reason = unstorable(tag)
        if reason is not None:
            raise SubscriberError(f"a tag {reason}.")
        if len(tag) > TAG_MAX:
            raise SubscriberError(f"tag '{tag[:20]}...' is longer than {TAG_MAX} characters.")
        cleaned.append(tag)
    if len(cleaned) > TAGS_MAX:
        raise SubscriberError(f"a subscriber has at most {TAGS_MAX} tags, not {len(cleaned)}.")
    return cleaned


@dataclass(frozen=True)
class Upserted:
    """A subscriber after an upsert, and whether the upsert created it."""

    subscriber: Subscriber
    created: bool


async def upsert(
    session: AsyncSession, recipient_no: str, district: str | None, tags: list[str]
) -> Upserted:
    """Create or update one subscriber and make them active again; the caller commits.

    A PUT is the subscriber asking for alerts, so it also lifts an earlier opt-out.
    """
    now = func.now()
    statement: ReturningInsert[Subscriber, bool] = (
        insert(Subscriber)
        .values(recipient_no=recipient_no, district=district, tags=tags)
        .on_conflict_do_update(
            index_elements=[Subscriber.recipient_no],
            set_={
                "district": district,
                "tags": tags,
                "status": "active",
                "opted_out_at": None,
                "updated_at": now,
            },
        )
        .returning(Subscriber, literal_column("xmax = 0", Boolean).label("created"))
    )
    row = (await session.execute(statement, execution_options={"populate_existing": True})).one()
    return Upserted(row[0], bool(row[1]))


async def opt_out(session: AsyncSession, recipient_no: str) -> Subscriber | None:
    """Mark one subscriber opted out (keeping the first opt-out time); None when unknown.

    Senders read only `status = 'active'` rows when they build each batch, so the change
    reaches broadcasts that are already running from their next batch on.
    """
    statement = (
        update(Subscriber)
        .where(Subscriber.recipient_no == recipient_no)
        .values(
            status="opted_out",
            opted_out_at=func.coalesce(Subscriber.opted_out_at, func.now()),
            updated_at=func.now(),
        )
        .returning(Subscriber)
    )
    result = await session.execute(statement, execution_options={"populate_existing": True})
    return result.scalar_one_or_none()


async def find(session: AsyncSession, recipient_no: str) -> Subscriber | None:
    """The subscriber with this number, or None."""
    return await session.scalar(select(Subscriber).where(Subscriber.recipient_no == recipient_no))


@dataclass(frozen=True)
class DistrictCount:
    """Subscribers of one district (None: no district) by status."""

    district: str | None
    active: int
    opted_out: int


async def counts_by_district(session: AsyncSession) -> list[DistrictCount]:
    """Active and opted-out subscribers per district, districts in order, no district last."""
    statement = (
        select(
            Subscriber.district,
            func.count().filter(Subscriber.status == "active"),
            func.count().filter(Subscriber.status == "opted_out"),
        )
        .group_by(Subscriber.district)
        .order_by(Subscriber.district.asc().nulls_last())
    )
    rows = (await session.execute(statement)).all()
    return [DistrictCount(district, active, opted_out) for district, active, opted_out in rows]
