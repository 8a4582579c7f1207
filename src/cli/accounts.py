"""`allim users` and `allim keys`: people, their roles and passwords, and their API keys.

These run on a server with the database's settings (`ALLIM_DATABASE_URL`), as an admin
would; each change is written to the audit log with the system user as the actor.
A password is read from standard input (`--password-stdin`) or asked for at a terminal,
never taken from the command line, where other users of the machine could read it.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.config import CommonSettings
from common.db import create_engine, session_factory
from common.models import ApiKey, User
from gateway import audit, users
from gateway.auth import create_key

SubParsers = Any  # argparse's private _SubParsersAction
T = TypeVar("T")


def _run(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one transaction on the configured database."""

    async def main() -> T:
        engine = create_engine(CommonSettings().database_url, pool_size=1)
        try:
            async with session_factory(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _password(args: argparse.Namespace) -> str | None:
    if getattr(args, "no_password", False):
        return None
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise SystemExit("Give the password on standard input with --password-stdin.")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        raise SystemExit("The two passwords differ; nothing was changed.")
    return first


def _refuse(exc: users.UserError) -> SystemExit:
    return SystemExit(f"{exc} Nothing was changed.")


def _users_create(args: argparse.Namespace) -> int:
    password = _password(args)

    async def work(session: AsyncSession) -> User:
        user = await users.create(session, args.name, args.role, password)
        detail = {"name": user.name, "role": user.role, "password": password is not None}
        audit.record(session, audit.Actor.shell(), "user.create", detail=detail)
        return user

    try:
        user = _run(work)
    except users.UserError as exc:
        raise _refuse(exc) from exc
    print(f"User '{user.name}' created with the role {user.role}.")
    return 0


def _users_list(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> list[tuple[User, int]]:
        keys = (
            select(func.count())
            .where(ApiKey.user_id == User.id, ApiKey.revoked_at.is_(None))
            .scalar_subquery()
        )
        rows = await session.execute(select(User, keys).order_by(User.id))
        return [(user, count) for user, count in rows.all()]

    now = datetime.now(UTC)
    print("name\trole\tstate\tpassword\tactive keys")
    for user, count in _run(work):
        state = "active"
        if user.disabled_at is not None:
            state = f"disabled {user.disabled_at:%Y-%m-%d %H:%M}"
        elif user.locked_until is not None and user.locked_until > now:
            state = f"locked until {user.locked_until:%H:%M:%S} UTC"
        password = "yes" if user.password_hash else "no"
        print(f"{user.name}\t{user.role}\t{state}\t{password}\t{count}")
    return 0


def _users_password(args: argparse.Namespace) -> int:
    password = _password(args)
    assert password is not None

    async def work(session: AsyncSession) -> None:
        user = await users.named(session, args.name, lock=True)
        user.password_hash = users.hash_password(password)
        user.failed_signins = 0
        user.locked_until = None
        audit.record(session, audit.Actor.shell(), "user.password", detail={"name": user.name})

    try:
        _run(work)
    except users.UserError as exc:
        raise _refuse(exc) from exc
    print(f"The password of '{args.name.strip()}' is set; the account is unlocked.")
    return 0


def _users_unlock(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> None:
        user = await users.named(session, args.name, lock=True)
        user.failed_signins = 0
        user.locked_until = None
        audit.record(session, audit.Actor.shell(), "user.unlock", detail={"name": user.name})

    try:
        _run(work)
    except users.UserError as exc:
        raise _refuse(exc) from exc
    print(f"'{args.name.strip()}' may sign in again.")
    return 0


def _users_disable(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> bool:
        user = await users.named(session, args.name, lock=True)
        changed = users.disable(user)
        if changed:
            audit.record(session, audit.Actor.shell(), "user.disable", detail={"name": user.name})
        return changed

    try:
        changed = _run(work)
    except users.UserError as exc:
        raise _refuse(exc) from exc
    name = args.name.strip()
    print(
        f"'{name}' is disabled: keys and sessions stopped."
        if changed
        else f"'{name}' was disabled already."
    )
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    label = (args.label or args.user).strip()
    if not label or len(label) > users.MAX_NAME:
        raise SystemExit(f"--label must be 1 to {users.MAX_NAME} characters.")

    async def work(session: AsyncSession) -> str:
        user = await users.named(session, args.user)
        if user.disabled_at is not None:
            raise users.InvalidUser(f"'{user.name}' is disabled.")
        key = await create_key(session, user, label, machine_feed=args.machine_feed)
        detail = {
            "user": user.name,
            "label": label,
            "prefix": key.split("_")[1],
            "machine_feed": args.machine_feed,
        }
        audit.record(session, audit.Actor.shell(), "key.create", detail=detail)
        return key

    try:
        key = _run(work)
    except users.UserError as exc:
        raise _refuse(exc) from exc
    # the plain key exists only here: it is stored as a hash
    print(key)
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> list[tuple[ApiKey, User]]:
        rows = await session.execute(
            select(ApiKey, User).join(User, User.id == ApiKey.user_id).order_by(ApiKey.id)
        )
        return [(key, user) for key, user in rows.all()]

    print("prefix\tuser\trole\tstate\tmachine feed\tlabel")
    for key, user in _run(work):
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        feed = "yes" if key.machine_feed else "no"
        print(f"{key.prefix}\t{user.name}\t{user.role}\t{state}\t{feed}\t{key.name}")
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    async def work(session: AsyncSession) -> int | None:
        result = await session.execute(
            update(ApiKey)
            .where(ApiKey.prefix == args.prefix, ApiKey.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
            .returning(ApiKey.id)
        )
        revoked: int | None = result.scalar_one_or_none()
        if revoked is not None:
            detail = {"prefix": args.prefix, "revoked_key_id": revoked}
            audit.record(session, audit.Actor.shell(), "key.revoke", detail=detail)
        return revoked

    if _run(work) is None:
        print(f"No active key has the prefix '{args.prefix}'.")
        return 1
    print(f"Key {args.prefix} revoked.")
    return 0


def _password_flags(parser: argparse.ArgumentParser, *, optional: bool) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    if optional:
        group.add_argument(
            "--no-password", action="store_true", help="no password: this user uses keys only"
        )


def register(subparsers: SubParsers) -> None:
    """Add `users create|list|password|unlock|disable` and `keys create|list|revoke`."""
    people = subparsers.add_parser("users", help="create, list and manage named users")
    people.set_defaults(handler=lambda args: people.print_help() or 2)
    actions = people.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a user with a role")
    create.add_argument("--name", required=True, help="the person's (or system's) name")
    create.add_argument("--role", required=True, choices=users.ROLES, help="what they may do")
    _password_flags(create, optional=True)
    create.set_defaults(handler=_users_create)
    listing = actions.add_parser("list", help="list users (name, role, state, keys)")
    listing.set_defaults(handler=_users_list)
    password = actions.add_parser("password", help="set a user's password (and unlock them)")
    password.add_argument("--name", required=True)
    _password_flags(password, optional=False)
    password.set_defaults(handler=_users_password)
    unlock = actions.add_parser("unlock", help="let a locked-out user sign in again")
    unlock.add_argument("--name", required=True)
    unlock.set_defaults(handler=_users_unlock)
    disable = actions.add_parser("disable", help="stop a user's keys and sessions for good")
    disable.add_argument("--name", required=True)
    disable.set_defaults(handler=_users_disable)

    keys = subparsers.add_parser("keys", help="create, list and revoke users' API keys")
    keys.set_defaults(handler=lambda args: keys.print_help() or 2)
    key_actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    key_create = key_actions.add_parser("create", help="create a key and print it (shown once)")
    key_create.add_argument("--user", required=True, help="the user the key acts for")
    key_create.add_argument("--label", help="who or what uses the key (default: the user)")
    key_create.add_argument(
        "--machine-feed",
        action="store_true",
        help="a system's key (a CAP source): may skip approval where the deployment allows",
    )
    key_create.set_defaults(handler=_keys_create)
    key_list = key_actions.add_parser("list", help="list keys (prefix, user, role, state)")
    key_list.set_defaults(handler=_keys_list)
    revoke = key_actions.add_parser("revoke", help="revoke a key by its prefix")
    revoke.add_argument("prefix", help="the part after 'allim_' in the key")
    revoke.set_defaults(handler=_keys_revoke)
