"""API keys: `allim_<prefix>_<secret>`, stored as a SHA-256 hash, looked up by prefix.

A key belongs to a user and acts with the user's role (`gateway.users`); a disabled user's
keys stop working. A key may be marked as a machine feed: a system such as a national
warning system's CAP source, whose alerts may skip approval where the deployment allows.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from common.models import ApiKey, User
from gateway import users
from gateway.users import Role, check_role


@dataclass(frozen=True)
class Principal:
    """Who made a request: a user, through a key (`key_id`) or a signed-in session."""

    user_id: int
    name: str
    role: Role
    key_id: int | None = None
    machine_feed: bool = False
    # the session's id when signed in: state-changing requests then need its CSRF token
    session_id: str | None = None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _split(key: str) -> tuple[str, str] | None:
    parts = key.split("_")
    if len(parts) != 3 or parts[0] != "allim" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def prefix_of(key: str) -> str:
    """The public part of a key (what `allim keys list` shows and `revoke` takes)."""
    split = _split(key)
    if split is None:
        raise ValueError("Not an allim API key.")
    return split[0]


async def create_key(
    session: AsyncSession, user: User, label: str, *, machine_feed: bool = False
) -> str:
    """Store a new key of `user` and return it; the plain key is shown this once only."""
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(24).replace("_", "-")
    session.add(
        ApiKey(
            name=label,
            user_id=user.id,
            machine_feed=machine_feed,
            prefix=prefix,
            key_hash=_hash(secret),
        )
    )
    await session.flush()
    return f"allim_{prefix}_{secret}"


async def authenticate(session: AsyncSession, key: str) -> Principal | None:
    """The principal of a presented key, or None when it is unknown, revoked, malformed, or
    its user is disabled."""
    split = _split(key)
    if split is None:
        return None
    prefix, secret = split
    row = (
        await session.execute(
            select(ApiKey, User)
            .join(User, User.id == ApiKey.user_id)
            .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
        )
    ).one_or_none()
    if row is None:
        return None
    key_row, user = row
    if not hmac.compare_digest(key_row.key_hash, _hash(secret)) or user.disabled_at is not None:
        return None
    return Principal(
        user_id=user.id,
        name=user.name,
        role=check_role(user.role),
        key_id=key_row.id,
        machine_feed=key_row.machine_feed,
    )


async def enrol(
    session: AsyncSession,
    name: str,
    role: str,
    *,
    password: str | None = None,
    machine_feed: bool = False,
) -> tuple[User, str]:
    """A new user with one key (named after the user): what a script or a demo needs."""
    user = await users.create(session, name, role, password)
    return user, await create_key(session, user, user.name, machine_feed=machine_feed)
