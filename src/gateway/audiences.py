"""Who an audience reaches: the check made at creation, and the reach by district.

A district or tag is *known* when some subscriber carries it, active or opted out; an
audience *reaches* the active subscribers it selects. At creation an alert is refused
when its audience names an unknown district or tag (a typo would otherwise go out to
nobody and end `completed` with targeted 0), or when it reaches nobody.

The creation check is one round trip of index look-ups: a district through
`ix_subscribers_district` (every status), a tag through the GIN index `ix_subscribers_tags`,
and "reaches someone" as an `EXISTS` that stops at the first active subscriber. The lists
of known names are read only to explain a refusal.

Errors (all `AudienceRefused`, a 422 at the edge):

    AudienceRefused
    ├── UnknownNames      a district or tag no subscriber carries
    └── ReachesNobody     no active subscriber matches
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from common.messages import Audience

# known names listed in a refusal, at most: a deployment with thousands of tags answers
# with the first ones (sorted) rather than a page-long error
MAX_LISTED = 200


class AudienceRefused(Exception):
    """An audience an alert may not be sent to; `errors` name the fields at fault, `known`
    lists the known districts and tags when they explain the refusal."""

    def __init__(
        self,
        detail: str,
        errors: list[dict[str, str]],
        known: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.known = known or {}


class UnknownNames(AudienceRefused):
    """The audience names districts or tags that no subscriber carries."""


class ReachesNobody(AudienceRefused):
    """The audience selects no active subscriber."""


@dataclass(frozen=True)
class Reach:
    """The active subscribers an audience selects: per district (None: no district), total."""

    by_district: dict[str | None, int]
    total: int


# `district = d` uses ix_subscribers_district, `tags @> ARRAY[t]` the GIN index; the
# EXISTS stops at the first active subscriber the filters select
_CHECK = text(
    """
SELECT
  ARRAY(SELECT d FROM unnest(CAST(:districts AS text[])) AS d
        WHERE NOT EXISTS (SELECT 1 FROM subscribers s WHERE s.district = d)) AS unknown_districts,
  ARRAY(SELECT t FROM unnest(CAST(:tags AS text[])) AS t
        WHERE NOT EXISTS (SELECT 1 FROM subscribers s
                          WHERE s.tags @> ARRAY[CAST(t AS varchar(64))])) AS unknown_tags,
  EXISTS (SELECT 1 FROM subscribers s
          WHERE s.status = 'active'
            AND (cardinality(CAST(:districts AS text[])) = 0
                 OR s.district = ANY(CAST(:districts AS text[])))
            AND (cardinality(CAST(:tags AS text[])) = 0
                 OR s.tags && CAST(:tags AS varchar(64)[]))) AS reaches
"""
)

# a loose index scan over ix_subscribers_district: one index probe per distinct district,
# not a read of every subscriber
_KNOWN_DISTRICTS = text(
    """
WITH RECURSIVE known(district) AS (
  (SELECT district FROM subscribers WHERE district IS NOT NULL ORDER BY district LIMIT 1)
  UNION ALL
  SELECT (SELECT s.district FROM subscribers s WHERE s.district > known.district
          ORDER BY s.district LIMIT 1)
  FROM known WHERE known.district IS NOT NULL
)
SELECT district FROM known WHERE district IS NOT NULL LIMIT :limit
"""
)

_KNOWN_TAGS = text(
    "SELECT DISTINCT tag FROM subscribers, unnest(tags) AS tag ORDER BY tag LIMIT :limit"
)

_REACH = text(
    """
SELECT district, count(*) FROM subscribers
WHERE status = 'active'
  AND (cardinality(CAST(:districts AS text[])) = 0
       OR district = ANY(CAST(:districts AS text[])))
  AND (cardinality(CAST(:tags AS text[])) = 0 OR tags && CAST(:tags AS varchar(64)[]))
GROUP BY district
ORDER BY district NULLS LAST
"""
)


# a follow-up's frozen audience: its rows in alert_recipients that are still active
_REACH_FROZEN = text(
    """
SELECT s.district, count(*) FROM alert_recipients r JOIN subscribers s ON s.id = r.subscriber_id
WHERE r.alert_id = :alert AND s.status = 'active'
GROUP BY s.district
ORDER BY s.district NULLS LAST
"""
)


def _filters(audience: Audience) -> dict[str, list[str]]:
    if audience.all:
        return {"districts": [], "tags": []}
    return {"districts": sorted(set(audience.districts)), "tags": sorted(set(audience.tags))}


async def check(session: AsyncSession, audience: Audience) -> None:
    """Refuse an audience with an unknown district or tag (`UnknownNames`), or that reaches
    no active subscriber (`ReachesNobody`)."""
    filters = _filters(audience)
    row = (await session.execute(_CHECK, filters)).one()
    unknown_districts: list[str] = list(row.unknown_districts)
    unknown_tags: list[str] = list(row.unknown_tags)
    if unknown_districts or unknown_tags:
        raise await _unknown(session, unknown_districts, unknown_tags)
    if not row.reaches:
        raise ReachesNobody(
            f"This audience reaches nobody: no active subscriber matches {_describe(audience)}.",
            [{"field": "audience", "message": "This audience reaches nobody."}],
        )


async def reach(session: AsyncSession, audience: Audience) -> Reach:
    """The active subscribers `audience` selects, per district and in total."""
    if audience.recipients_of is not None:
        frozen = {"alert": audience.recipients_of}
        rows = (await session.execute(_REACH_FROZEN, frozen)).all()
    else:
        rows = (await session.execute(_REACH, _filters(audience))).all()
    by_district: dict[str | None, int] = {district: int(count) for district, count in rows}
    return Reach(by_district=by_district, total=sum(by_district.values()))


async def _unknown(
    session: AsyncSession, unknown_districts: list[str], unknown_tags: list[str]
) -> UnknownNames:
    errors: list[dict[str, str]] = []
    parts: list[str] = []
    known_names: dict[str, list[str]] = {}
    for name, unknown, query in (
        ("districts", unknown_districts, _KNOWN_DISTRICTS),
        ("tags", unknown_tags, _KNOWN_TAGS),
    ):
        if not unknown:
            continue
        known = list(await session.scalars(query, {"limit": MAX_LISTED + 1}))
        known_names[name] = known[:MAX_LISTED]
        listed = _listing(known)
        parts.append(f"unknown {name} {_quoted(unknown)} (known: {listed})")
        errors.append(
            {
                "field": f"audience.{name}",
                "message": f"Unknown {name} {_quoted(unknown)}; known: {listed}.",
            }
        )
    return UnknownNames(f"No subscriber has them: {'; '.join(parts)}.", errors, known_names)


def _quoted(names: list[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def _listing(known: list[str]) -> str:
    if not known:
        return "none, no subscriber has one"
    more = ", ..." if len(known) > MAX_LISTED else ""
    return _quoted(known[:MAX_LISTED]) + more


def _describe(audience: Audience) -> str:
    if audience.all:
        return "the whole audience (there are no active subscribers)"
    parts = []
    if audience.districts:
        parts.append(f"districts {_quoted(sorted(set(audience.districts)))}")
    if audience.tags:
        parts.append(f"tags {_quoted(sorted(set(audience.tags)))}")
    return " and ".join(parts)
