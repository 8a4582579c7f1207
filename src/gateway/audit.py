"""The audit log: every operator action recorded in the transaction that does it.

`record` adds one `audit_log` row to the caller's session, so the row commits or rolls back
with the action. The table is append-only (a trigger refuses UPDATE, DELETE and TRUNCATE;
migration 0004). `page` reads it newest first, by keyset on the row id.

Actions: `alert.create`, `alert.approve`, `alert.reject`, `alert.expire`, `alert.test`,
`alert.pause`, `alert.resume`, `alert.resend`, `alert.correction`, `alert.update`,
`alert.cancel`, `signin`, `signin.failed`, `signin.refused`, `signout`, `user.create`,
`user.password`, `user.unlock`, `user.disable`, `key.create`, `key.revoke`, `subscriber.opt_out`,
`subscribers.import`.
"""

from __future__ import annotations

import getpass
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from common.models import AuditEntry
from gateway.auth import Principal


@dataclass(frozen=True)
class Actor:
    """Who did something: a name, the user, and the API key when one was used."""

    name: str
    key_id: int | None = None
    user_id: int | None = None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        """The actor of a request: its user, and its key unless the user signed in."""
        return cls(name=principal.name, key_id=principal.key_id, user_id=principal.user_id)

    @classmethod
    def shell(cls) -> Actor:
        """The actor of a command run on the server (`allim keys ...`): the system user."""
        try:
            user = getpass.getuser()
        except OSError:  # no login name and no passwd entry, as in some containers
            user = "unknown"
        return cls(name=f"cli:{user}")


@dataclass(frozen=True)
class AuditFilter:
    """Which rows a reader wants; None means any."""

    alert_id: uuid.UUID | None = None
    actor: str | None = None
    action: str | None = None


def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    *,
    alert_id: uuid.UUID | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add the action's audit row to `session`; it commits with the caller's transaction."""
    session.add(
        AuditEntry(
            actor=actor.name,
            user_id=actor.user_id,
            key_id=actor.key_id,
            action=action,
            alert_id=alert_id,
            detail=detail or {},
        )
    )


_INSERT = (
    "INSERT INTO audit_log (actor, user_id, key_id, action, alert_id, detail)"
    " VALUES ($1, $2, $3, $4, $5, $6::jsonb)"
)


async def record_on(
    connection: asyncpg.Connection,
    actor: Actor,
    action: str,
    *,
    alert_id: uuid.UUID | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """`record` for work done on a plain asyncpg connection (the subscriber import): the row
    commits with the connection's transaction."""
    await connection.execute(
        _INSERT,
        actor.name,
        actor.user_id,
        actor.key_id,
        action,
        alert_id,
        orjson.dumps(detail or {}).decode(),
    )


@dataclass(frozen=True)
class AuditRows:
    """One page of audit rows, newest first; `next_before` is the id to continue below."""

    entries: list[AuditEntry]
    next_before: int | None


async def page(
    session: AsyncSession, where: AuditFilter, *, before: int | None, limit: int
) -> AuditRows:
    """Up to `limit` rows matching `where` with an id below `before`, newest first."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)
    if where.alert_id is not None:
        query = query.where(AuditEntry.alert_id == where.alert_id)
    if where.actor is not None:
        query = query.where(AuditEntry.actor == where.actor)
    if where.action is not None:
        query = query.where(AuditEntry.action == where.action)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    rows = list((await session.scalars(query)).all())
    more = len(rows) > limit
    return AuditRows(rows[:limit], rows[limit - 1].id if more else None)
