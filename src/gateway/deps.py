"""FastAPI dependencies: the shared state, a database session, and the caller's role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader
from sqlalchemy.ext.asyncio import AsyncSession

from common.problems import Problem
from gateway.auth import GRANTS, Principal, Role, authenticate
from gateway.state import GatewayState

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An allim API key")


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


def require(role: Role) -> object:
    """A dependency that answers 401 without a valid key and 403 without `role`."""

    async def check(state: StateDep, key: Annotated[str | None, Depends(_api_key)]) -> Principal:
        if not key:
            raise Problem(401, "Unauthorized", "This route needs an API key in X-API-Key.")
        async with state.sessions() as session:
            principal = await authenticate(session, key)
        if principal is None:
            raise Problem(401, "Unauthorized", "The API key is unknown or revoked.")
        if principal.role not in GRANTS[role]:
            raise Problem(
                403,
                "Forbidden",
                f"This route needs the '{role}' role; the key has '{principal.role}'.",
            )
        return principal

    return Depends(check)


OperatorDep = Annotated[Principal, require("operator")]
ViewerDep = Annotated[Principal, require("viewer")]
