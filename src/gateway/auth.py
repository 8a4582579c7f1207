"""Operator API keys: `allim_<prefix>_<secret>`, stored as a SHA-256 hash, looked up by prefix.

Roles: `operator` may send, cancel and import; `viewer` may only read.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from common.models import ApiKey

Role = Literal["operator", "viewer"]
ROLES: tuple[Role, ...] = ("operator", "viewer")
# which roles satisfy a required role
GRANTS: dict[Role, frozenset[str]] = {
    "viewer": frozenset({"viewer", "operator"}),
    "operator": frozenset({"operator"}),
}


@dataclass(frozen=True)
class Principal:
    """Who made a request."""

    key_id: int
    name: str
    role: Role


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _split(key: str) -> tuple[str, str] | None:
    parts = key.split("_")
    if len(parts) != 3 or parts[0] != "allim" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


async def create_key(session: AsyncSession, name: str, role: Role) -> str:
    """Store a new key and return it; the plain key is shown this once only."""
    if role not in ROLES:
        raise ValueError(f"Role '{role}' is not one of {', '.join(ROLES)}.")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(24).replace("_", "-")
    session.add(ApiKey(name=name, role=role, prefix=prefix, key_hash=_hash(secret)))
    await session.flush()
    return f"allim_{prefix}_{secret}"


async def authenticate(session: AsyncSession, key: str) -> Principal | None:
    """The principal of a presented key, or None when it is unknown, revoked or malformed."""
    split = _split(key)
    if split is None:
        return None
    prefix, secret = split
    row = await session.scalar(
        select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
    )
    if row is None or not hmac.compare_digest(row.key_hash, _hash(secret)):
        return None
    role: Role = "operator" if row.role == "operator" else "viewer"
    return Principal(row.id, row.name, role)
