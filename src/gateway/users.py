"""Named users: one role each, a password hashed with argon2, and what each role may do.

| permission | what it covers                                   | roles                     |
| ---------- | ------------------------------------------------ | ------------------------- |
| `read`     | alerts, subscribers, stats, progress             | every role                |
| `send`     | create, preview, test and cancel alerts; import  | operator, approver        |
|            | and opt out subscribers                          |                           |
| `approve`  | approve or reject an alert someone else wrote    | approver                  |
| `audit`    | read the audit log                               | approver, admin           |
| `manage`   | users and API keys                               | admin                     |

An approver may also prepare alerts, so two approvers can cover for each other; nobody
approves their own alert, whichever key or session they use.

Errors (all `UserError`):

    UserError
    ├── UnknownUser      no user has that name
    └── InvalidUser      a name, role or password that breaks the rules
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from common.models import User

Role = Literal["viewer", "operator", "approver", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "approver", "admin")
Permission = Literal["read", "send", "approve", "audit", "manage"]
PERMISSIONS: dict[Permission, frozenset[Role]] = {
    "read": frozenset(ROLES),
    "send": frozenset({"operator", "approver"}),
    "approve": frozenset({"approver"}),
    "audit": frozenset({"approver", "admin"}),
    "manage": frozenset({"admin"}),
}
MIN_PASSWORD = 12
MAX_PASSWORD = 256
MAX_NAME = 100

# argon2id with the library's defaults (RFC 9106's second recommended set)
_hasher = PasswordHasher()
# verified against when the user is unknown, so an unknown name costs what a known one does
_DECOY = _hasher.hash("allim: no such user")


class UserError(Exception):
    """A user operation that is refused; the message says why."""


class UnknownUser(UserError):
    """No user has the name."""


class InvalidUser(UserError):
    """A name, role or password breaks the rules."""


def may(role: str, permission: Permission) -> bool:
    """Whether `role` grants `permission`."""
    return role in PERMISSIONS[permission]


def check_name(name: str) -> str:
    """The name stripped, or `InvalidUser`."""
    stripped = name.strip()
    if not stripped or len(stripped) > MAX_NAME:
        raise InvalidUser(f"A user's name must be 1 to {MAX_NAME} characters.")
    return stripped


def check_role(role: str) -> Role:
    """`role` as a Role, or `InvalidUser` naming the roles."""
    for known in ROLES:
        if role == known:
            return known
    raise InvalidUser(f"Role '{role}' is not one of {', '.join(ROLES)}.")


def hash_password(password: str) -> str:
    """The argon2 hash of an acceptable password, or `InvalidUser` saying what is wrong."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidUser(
            f"A password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters; "
            f"this one has {len(password)}."
        )
    if not password.strip():
        raise InvalidUser("A password may not be only spaces.")
    return _hasher.hash(password)


def password_matches(password_hash: str | None, password: str) -> bool:
    """Whether `password` is the one hashed; False for a user without a password."""
    try:
        return _hasher.verify(password_hash or _DECOY, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def create(session: AsyncSession, name: str, role: str, password: str | None = None) -> User:
    """Add a user (in the caller's transaction); `InvalidUser` when a rule is broken."""
    checked = check_name(name)
    if await find(session, checked) is not None:
        raise InvalidUser(f"A user named '{checked}' exists already.")
    user = User(
        name=checked,
        role=check_role(role),
        password_hash=hash_password(password) if password is not None else None,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # created by someone else between the look-up and now
        raise InvalidUser(f"A user named '{checked}' exists already.") from exc
    return user


async def find(session: AsyncSession, name: str) -> User | None:
    """The user with this name, if any."""
    user: User | None = await session.scalar(select(User).where(User.name == name.strip()))
    return user


async def named(session: AsyncSession, name: str, *, lock: bool = False) -> User:
    """The user with this name, or `UnknownUser`."""
    query = select(User).where(User.name == name.strip())
    user: User | None = await session.scalar(query.with_for_update() if lock else query)
    if user is None:
        raise UnknownUser(f"No user is named '{name.strip()}'.")
    return user


async def listing(session: AsyncSession) -> list[User]:
    """Every user, in the order they were created."""
    return list((await session.scalars(select(User).order_by(User.id))).all())


def disable(user: User) -> bool:
    """Disable the user (their keys and sessions stop working); False if it already was."""
    if user.disabled_at is not None:
        return False
    user.disabled_at = datetime.now(UTC)
    return True
