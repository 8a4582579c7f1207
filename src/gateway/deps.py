"""FastAPI dependencies: the shared state, a database session, and the caller's permission.

A caller is known by an API key in `X-API-Key` or by a signed-in session's cookie; with
the cookie, a state-changing request must also carry the session's CSRF token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader
from sqlalchemy.ext.asyncio import AsyncSession

from common.problems import Problem
from gateway import signin
from gateway.auth import Principal, authenticate
from gateway.state import GatewayState
from gateway.users import PERMISSIONS, Permission, may

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An allim API key")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_FORM_BYTES = 64 * 1024


def get_state(request: Request) -> GatewayState:
    """The process's shared state."""
    state: GatewayState = request.app.state.gateway
    return state


async def _state(request: Request) -> GatewayState:
    # async: FastAPI runs a plain-def dependency in a worker thread on every request
    return get_state(request)


StateDep = Annotated[GatewayState, Depends(_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    """A session for one request; the route commits what it changes."""
    async with state.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def identify(
    request: Request, state: StateDep, key: Annotated[str | None, Depends(_api_key)]
) -> Principal:
    """The caller, by key or by session cookie (with its CSRF token); 401 or 403 otherwise."""
    if key:
        async with state.sessions() as session:
            principal = await authenticate(session, key)
        if principal is None:
            raise Problem(401, "Unauthorized", "The API key is unknown or revoked.")
        return principal
    token = request.cookies.get(state.settings.gateway_session_cookie)
    if not token:
        raise Problem(
            401, "Unauthorized", "This route needs an API key in X-API-Key, or a signed-in session."
        )
    async with state.sessions() as session:
        found = await signin.principal(session, token, state.settings, datetime.now(UTC))
    if found is None:
        raise Problem(
            401,
            "Unauthorized",
            "The session has ended (signed out, expired or unused too long); sign in again.",
        )
    principal, csrf = found
    if request.method not in SAFE_METHODS and not signin.csrf_matches(
        csrf, await _presented_csrf(request)
    ):
        raise Problem(
            403,
            "Forbidden",
            f"A signed-in request that changes something needs the session's CSRF token in "
            f"{signin.CSRF_HEADER} (or a form's `{signin.CSRF_FIELD}` field); it is missing "
            "or wrong.",
        )
    return principal


async def _presented_csrf(request: Request) -> str | None:
    header = request.headers.get(signin.CSRF_HEADER)
    if header is not None:
        return header
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    length = request.headers.get("content-length", "")
    # a form is read for its token only when it says how long it is and is small: a large
    # or unbounded body is not parsed before the caller is known
    if media_type in FORM_TYPES and length.isdigit() and int(length) <= MAX_FORM_BYTES:
        value = (await request.form()).get(signin.CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


IdentityDep = Annotated[Principal, Depends(identify)]


def require(permission: Permission) -> object:
    """A dependency that answers 401 without a valid key or session, 403 without
    `permission`."""

    async def check(principal: IdentityDep) -> Principal:
        if not may(principal.role, permission):
            roles = " or ".join(sorted(PERMISSIONS[permission]))
            raise Problem(
                403,
                "Forbidden",
                f"This needs the {roles} role; {principal.name} is {principal.role}.",
            )
        return principal

    return Depends(check)


ViewerDep = Annotated[Principal, require("read")]
OperatorDep = Annotated[Principal, require("send")]
ApproverDep = Annotated[Principal, require("approve")]
AuditorDep = Annotated[Principal, require("audit")]
AdminDep = Annotated[Principal, require("manage")]
