"""`/v1/users` and `/v1/keys`: people and their API keys, for admins over HTTP.

What `allim users` and `allim keys` do on the server (`cli/accounts.py`), with the same
rules (`gateway.users`, `gateway.auth`) and audited the same way, the actor being the admin
who asked. A key is shown once, in the answer that creates it; it is stored as a hash.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field, StrictBool
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.models import ApiKey, User
from common.problems import Problem
from gateway import audit, users
from gateway.auth import create_key
from gateway.deps import AdminDep, SessionDep
from gateway.fields import Filled, JsonInteger
from gateway.routes.responses import AUTH_ERRORS, problem_doc
from gateway.users import MAX_NAME, MAX_PASSWORD, MIN_PASSWORD, Role

router = APIRouter(prefix="/v1", tags=["accounts"])
# a user id is a PostgreSQL integer: a larger one was a 500, not the 404 or 422 it is
MAX_USER_ID = 2**31 - 1

UNKNOWN_USER: dict[int | str, dict[str, Any]] = {404: problem_doc("No user has that id.")}
PREFIX_PATTERN = r"^[0-9a-f]{1,16}$"


class UserCreate(BaseModel):
    """A new person: a unique name, a role, and a password (none: API keys only)."""

    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME), Filled]
    role: Role
    password: Annotated[
        Annotated[str, Filled] | None, Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)
    ] = None


class UserPublic(BaseModel):
    """A person as `allim users list` shows them."""

    id: int
    name: str
    role: Role
    state: str = Field(description="`active`, `locked` (wrong passwords) or `disabled`.")
    password: bool = Field(description="Whether the person can sign in with a password.")
    active_keys: int
    created_at: datetime
    disabled_at: datetime | None
    locked_until: datetime | None


class KeyCreate(BaseModel):
    """A new key of a user; its label says who or what uses it (the user's name if none)."""

    # `"1"` or `0` is not the integer or the boolean the document asks for
    user_id: Annotated[int, Field(ge=1, le=MAX_USER_ID), JsonInteger]
    label: Annotated[Annotated[str, Filled] | None, Field(max_length=MAX_NAME)] = None
    machine_feed: StrictBool = False


class KeyPublic(BaseModel):
    """A key as `allim keys list` shows it: never the key itself."""

    prefix: str
    label: str
    user: str
    role: Role
    machine_feed: bool
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyPublic):
    """A new key, with the key shown this once."""

    key: str = Field(description="The key; only its hash is stored, so it is not shown again.")


def _invalid(field: str, exc: users.InvalidUser) -> Problem:
    return Problem(422, "Invalid", str(exc), errors=[{"field": field, "message": str(exc)}])


async def _user_page(session: AsyncSession, user_ids: list[int] | None = None) -> list[UserPublic]:
    keys = (
        select(func.count())
        .where(ApiKey.user_id == User.id, ApiKey.revoked_at.is_(None))
        .scalar_subquery()
    )
    query = select(User, keys).order_by(User.id)
    if user_ids is not None:
        query = query.where(User.id.in_(user_ids))
    now = datetime.now(UTC)
    return [_user_public(user, count, now) for user, count in (await session.execute(query)).all()]


def _user_public(user: User, active_keys: int, now: datetime) -> UserPublic:
    state = "active"
    if user.disabled_at is not None:
        state = "disabled"
    elif user.locked_until is not None and user.locked_until > now:
        state = "locked"
    return UserPublic(
        id=user.id,
        name=user.name,
        role=users.check_role(user.role),
        state=state,
        password=user.password_hash is not None,
        active_keys=active_keys,
        created_at=user.created_at,
        disabled_at=user.disabled_at,
        locked_until=user.locked_until,
    )


async def _one(session: AsyncSession, user_id: int) -> UserPublic:
    found = await _user_page(session, [user_id])
    if not found:
        raise Problem(404, "Not Found", f"No user has the id {user_id}.")
    return found[0]


async def _locked_user(session: AsyncSession, user_id: int) -> User:
    user: User | None = await session.scalar(
        select(User).where(User.id == user_id).with_for_update()
    )
    if user is None:
        raise Problem(404, "Not Found", f"No user has the id {user_id}.")
    return user


@router.get("/users", summary="Every user, in the order they were created", responses=AUTH_ERRORS)
async def list_users(_: AdminDep, session: SessionDep) -> list[UserPublic]:
    """Each user's role, state, whether they have a password, and their active keys."""
    return await _user_page(session)


@router.post(
    "/users",
    status_code=201,
    summary="Create a user",
    responses={
        **AUTH_ERRORS,
        409: problem_doc("A user has that name already."),
        422: problem_doc("A name, role or password that breaks the rules."),
    },
)
async def create_user(body: UserCreate, admin: AdminDep, session: SessionDep) -> UserPublic:
    """A new user with `role`, and a password when one is given (at least 12 characters)."""
    try:
        users.check_name(body.name)
    except users.InvalidUser as exc:
        raise _invalid("name", exc) from exc
    try:
        user = await users.create(session, body.name, body.role, body.password)
    except users.InvalidUser as exc:
        if await users.find(session, body.name) is not None:
            raise Problem(409, "Conflict", str(exc)) from exc
        raise _invalid("password", exc) from exc
    detail = {"name": user.name, "role": user.role, "password": body.password is not None}
    audit.record(session, audit.Actor.of(admin), "user.create", detail=detail)
    await session.commit()
    return await _one(session, user.id)


@router.post(
    "/users/{user_id}/disable",
    summary="Disable a user: their keys and sessions stop working",
    responses={**AUTH_ERRORS, **UNKNOWN_USER, 409: problem_doc("An admin disabling themself.")},
)
async def disable_user(
    user_id: Annotated[int, Path(ge=1, le=MAX_USER_ID)], admin: AdminDep, session: SessionDep
) -> UserPublic:
    """Disable the user; disabling a disabled user changes and records nothing."""
    if user_id == admin.user_id:
        raise Problem(409, "Conflict", "An admin cannot disable themself; ask another admin.")
    user = await _locked_user(session, user_id)
    if users.disable(user):
        audit.record(session, audit.Actor.of(admin), "user.disable", detail={"name": user.name})
    await session.commit()
    return await _one(session, user_id)


@router.post(
    "/users/{user_id}/unlock",
    summary="Let a user locked by wrong passwords sign in again",
    responses={**AUTH_ERRORS, **UNKNOWN_USER},
)
async def unlock_user(
    user_id: Annotated[int, Path(ge=1, le=MAX_USER_ID)], admin: AdminDep, session: SessionDep
) -> UserPublic:
    """Forget the wrong passwords in a row and end a lock."""
    user = await _locked_user(session, user_id)
    user.failed_signins = 0
    user.locked_until = None
    audit.record(session, audit.Actor.of(admin), "user.unlock", detail={"name": user.name})
    await session.commit()
    return await _one(session, user_id)


def _key_public(key: ApiKey, user: User) -> KeyPublic:
    return KeyPublic(
        prefix=key.prefix,
        label=key.name,
        user=user.name,
        role=users.check_role(user.role),
        machine_feed=key.machine_feed,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


@router.get("/keys", summary="Every API key (never the key itself)", responses=AUTH_ERRORS)
async def list_keys(_: AdminDep, session: SessionDep) -> list[KeyPublic]:
    """Each key's prefix, label, user and state, in the order they were created."""
    rows = await session.execute(
        select(ApiKey, User).join(User, User.id == ApiKey.user_id).order_by(ApiKey.id)
    )
    return [_key_public(key, user) for key, user in rows.all()]


@router.post(
    "/keys",
    status_code=201,
    summary="Create an API key of a user; the answer shows it once",
    responses={
        **AUTH_ERRORS,
        404: problem_doc("No user has that id."),
        409: problem_doc("The user is disabled."),
    },
)
async def create_user_key(body: KeyCreate, admin: AdminDep, session: SessionDep) -> KeyCreated:
    """A new key acting for the user, with the user's role."""
    user = await session.get(User, body.user_id)
    if user is None:
        raise Problem(404, "Not Found", f"No user has the id {body.user_id}.")
    if user.disabled_at is not None:
        raise Problem(409, "Conflict", f"'{user.name}' is disabled.")
    label = (body.label or user.name).strip()
    if not label:
        raise _invalid("label", users.InvalidUser("A key's label may not be blank."))
    plain = await create_key(session, user, label, machine_feed=body.machine_feed)
    prefix = plain.split("_")[1]
    detail = {
        "user": user.name,
        "label": label,
        "prefix": prefix,
        "machine_feed": body.machine_feed,
    }
    audit.record(session, audit.Actor.of(admin), "key.create", detail=detail)
    await session.commit()
    key = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    assert key is not None
    return KeyCreated(**_key_public(key, user).model_dump(), key=plain)


@router.post(
    "/keys/{prefix}/revoke",
    status_code=204,
    summary="Revoke an API key: it stops working at once",
    responses={**AUTH_ERRORS, 404: problem_doc("No active key has that prefix.")},
)
async def revoke_key(
    prefix: Annotated[str, Path(pattern=PREFIX_PATTERN)], admin: AdminDep, session: SessionDep
) -> Response:
    """Revoke the key; a revoked or unknown prefix is a 404."""
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
        .returning(ApiKey.id)
    )
    revoked: int | None = result.scalar_one_or_none()
    if revoked is None:
        raise Problem(404, "Not Found", f"No active key has the prefix '{prefix}'.")
    detail = {"prefix": prefix, "revoked_key_id": revoked}
    audit.record(session, audit.Actor.of(admin), "key.revoke", detail=detail)
    await session.commit()
    return Response(status_code=204)
