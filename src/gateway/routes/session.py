"""`/v1/session`: sign in with a name and password, see who is signed in, sign out.

The session lives in an HttpOnly, SameSite=Strict cookie; every state-changing request made
with it carries the session's CSRF token (`X-CSRF-Token`, or a form's `csrf_token`).
Sign-in takes JSON or a form post; see `gateway.signin` for expiry and throttling.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, ValidationError

from common.models import WebSession
from common.problems import Problem
from gateway import signin
from gateway.deps import FORM_TYPES, IdentityDep, SessionDep, StateDep
from gateway.fields import Storable
from gateway.routes.responses import SESSION_ONLY, problem_doc
from gateway.users import MAX_NAME, MAX_PASSWORD, Role

router = APIRouter(prefix="/v1/session", tags=["session"])


class Credentials(BaseModel):
    """A person's name and password."""

    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME), Storable]
    password: Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD)]


class SessionPublic(BaseModel):
    """Who is signed in, the CSRF token their state-changing requests carry, and the end."""

    name: str
    role: Role
    csrf_token: str = Field(description=f"Send it in {signin.CSRF_HEADER} on every change.")
    expires_at: datetime | None = Field(description="When the session ends at the latest.")


@router.post(
    "",
    summary="Sign in: a session cookie and its CSRF token",
    response_model=SessionPublic,
    responses={
        401: problem_doc("The name or the password is wrong (which one is not said)."),
        415: problem_doc("Neither application/json nor a form post."),
        422: problem_doc("No name or password, or one too long."),
        429: problem_doc(
            "Too many wrong passwords: wait (`Retry-After`), or the account is locked for a "
            "while; the detail says which and until when."
        ),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Credentials"}},
                "application/x-www-form-urlencoded": {
                    "schema": {"$ref": "#/components/schemas/Credentials"}
                },
            },
        }
    },
)
async def sign_in(
    request: Request, response: Response, state: StateDep, session: SessionDep
) -> SessionPublic:
    """Check the password (throttled per account) and set the session cookie."""
    credentials = await _credentials(request)
    settings = state.settings
    try:
        opened = await signin.sign_in(
            session, credentials.name, credentials.password, settings, datetime.now(UTC)
        )
    except signin.SignInRefused as exc:
        headers = {"Retry-After": str(math.ceil(exc.retry_after))} if exc.retry_after else None
        title = "Too Many Requests" if exc.status == 429 else "Unauthorized"
        raise Problem(exc.status, title, str(exc), headers=headers) from exc
    response.set_cookie(
        settings.gateway_session_cookie,
        opened.token,
        max_age=int(settings.gateway_session_hours * 3600),
        path="/",
        secure=settings.public_base_url.startswith("https://"),
        httponly=True,
        samesite="strict",
    )
    response.headers["Cache-Control"] = "no-store"
    return SessionPublic(
        name=opened.name,
        role=opened.role,
        csrf_token=opened.csrf_token,
        expires_at=opened.expires_at,
    )


@router.get(
    "",
    summary="Who is signed in, and the session's CSRF token",
    response_model=SessionPublic,
    responses={401: problem_doc("No session, or it ended (signed out, expired, unused).")},
)
async def whoami(principal: IdentityDep, session: SessionDep) -> SessionPublic:
    """The signed-in person (a key's caller is answered too, without a CSRF token)."""
    if principal.session_id is None:
        return SessionPublic(
            name=principal.name, role=principal.role, csrf_token="", expires_at=None
        )
    web = await session.get(WebSession, principal.session_id)
    if web is None or web.ended_at is not None:  # it ended since `identify` read it
        raise Problem(401, "Unauthorized", "The session has ended; sign in again.")
    return SessionPublic(
        name=principal.name,
        role=principal.role,
        csrf_token=web.csrf_token,
        expires_at=web.expires_at,
    )


@router.delete(
    "",
    status_code=204,
    summary="Sign out: the session's cookie stops working",
    responses={
        401: problem_doc("No session, or it ended already."),
        403: problem_doc("The CSRF token is missing or wrong."),
        404: problem_doc("The caller came with an API key, which has no session to end."),
    },
    openapi_extra=SESSION_ONLY,
)
async def sign_out(principal: IdentityDep, state: StateDep, session: SessionDep) -> Response:
    """End the session (also for whoever copied its cookie) and clear the cookie."""
    if principal.session_id is None:
        # no session is the target: the caller has none (a key is revoked, not signed out)
        raise Problem(404, "Not Found", "An API key has no session to end: revoke the key instead.")
    await signin.sign_out(session, principal, datetime.now(UTC))
    response = Response(status_code=204)
    response.delete_cookie(state.settings.gateway_session_cookie, path="/")
    return response


async def _credentials(request: Request) -> Credentials:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if media_type in FORM_TYPES:
            form = await request.form()
            return Credentials.model_validate(
                {"name": form.get("name"), "password": form.get("password")}
            )
        if media_type == "application/json":
            return Credentials.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
            for e in exc.errors(include_url=False)
        ]
        raise Problem(
            422, "Invalid sign-in", "The name and password are needed.", errors=errors
        ) from exc
    raise Problem(415, "Unsupported Media Type", "Sign in with application/json or a form post.")
