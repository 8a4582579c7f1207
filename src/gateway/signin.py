"""Sign-in for people: password check with throttling, sessions, CSRF tokens, sign-out.

A session is a random token in an HttpOnly, SameSite=Strict cookie (Secure when the
gateway's public URL is https); the `web_sessions` row is keyed by the token's SHA-256, so
the database holds no usable cookie. A session ends at sign-out, after
`gateway_session_hours`, after `gateway_session_idle_minutes` unused, or when its user is
disabled. Each session has its own CSRF token (synchronizer token): a state-changing request
made with the cookie must carry it in `X-CSRF-Token` (or a form's `csrf_token` field).

Throttling, per account: after `gateway_signin_slow_after` wrong passwords in a row, each
further attempt must wait (`gateway_signin_slow_seconds`, doubling each time) and one made
sooner is refused without looking at the password; `gateway_signin_lock_after` wrong
passwords lock the account for `gateway_signin_lock_minutes`. A right password resets the
count. Each refusal says which of these it is and for how long.

Errors (all `SignInRefused`, each with an HTTP status and, when waiting helps, a wait):

    SignInRefused
    ├── WrongCredentials   401: unknown name, wrong password, disabled, or no password
    └── Throttled          429: too soon after wrong passwords, or locked
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.models import User, WebSession
from gateway import audit, users
from gateway.auth import Principal
from gateway.config import GatewaySettings

CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
# last_seen_at is written at most this often, so a busy console is not a write per request
TOUCH_SECONDS = 60


class SignInRefused(Exception):
    """A sign-in that is refused; the message says why, `status` is the HTTP answer."""

    status = 401

    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class WrongCredentials(SignInRefused):
    """The name or password is wrong (or the user cannot sign in): which is not said."""


class Throttled(SignInRefused):
    """Too many wrong passwords: wait, or the account is locked for a while."""

    status = 429


@dataclass(frozen=True)
class SignedIn:
    """A new session: the cookie's token (shown once), its CSRF token, and its end."""

    token: str
    csrf_token: str
    expires_at: datetime
    role: users.Role
    name: str


def session_id(token: str) -> str:
    """The row id of the session whose cookie holds `token`."""
    return hashlib.sha256(token.encode()).hexdigest()


def slow_wait(failed: int, settings: GatewaySettings) -> float:
    """Seconds to wait after `failed` wrong passwords in a row (0 below the threshold)."""
    over = failed - settings.gateway_signin_slow_after
    if over < 0:
        return 0.0
    return settings.gateway_signin_slow_seconds * 2.0 ** min(over, 20)


async def sign_in(
    session: AsyncSession,
    name: str,
    password: str,
    settings: GatewaySettings,
    now: datetime,
) -> SignedIn:
    """Check the password and open a session, or raise `SignInRefused`.

    Every attempt is audited (`signin`, `signin.failed`, `signin.refused`) and the failure
    count is committed also when the attempt is refused.
    """
    refusal: SignInRefused | None = None
    signed_in: SignedIn | None = None
    async with session.begin():
        user = await session.scalar(select(User).where(User.name == name.strip()).with_for_update())
        if user is None:
            users.password_matches(None, password)  # the same cost as a known name
            # and the same answer as a known name's first wrong password
            refusal = WrongCredentials(_wrong_detail(1, settings))
            _audit(session, name, None, "signin.failed", {"reason": "unknown name"})
        else:
            refusal = _throttled(user, settings, now)
            if refusal is not None:
                _audit(session, user.name, user.id, "signin.refused", {"reason": str(refusal)})
            elif user.disabled_at is not None or not users.password_matches(
                user.password_hash, password
            ):
                refusal = _wrong(user, settings, now)
                reason = "disabled" if user.disabled_at is not None else "wrong password"
                detail = {"reason": reason, "failed_in_a_row": user.failed_signins}
                _audit(session, user.name, user.id, "signin.failed", detail)
            else:
                user.failed_signins = 0
                user.locked_until = None
                signed_in = _open(session, user, settings, now)
                _audit(session, user.name, user.id, "signin", {})
    if refusal is not None:
        raise refusal
    assert signed_in is not None
    return signed_in


async def principal(
    session: AsyncSession, token: str, settings: GatewaySettings, now: datetime
) -> tuple[Principal, str] | None:
    """The signed-in principal and the session's CSRF token, or None if the session ended."""
    idle = timedelta(minutes=settings.gateway_session_idle_minutes)
    row = (
        await session.execute(
            select(WebSession, User)
            .join(User, User.id == WebSession.user_id)
            .where(
                WebSession.id == session_id(token),
                WebSession.ended_at.is_(None),
                WebSession.expires_at > now,
                WebSession.last_seen_at > now - idle,
                User.disabled_at.is_(None),
            )
        )
    ).one_or_none()
    if row is None:
        return None
    web, user = row
    if (now - web.last_seen_at).total_seconds() >= TOUCH_SECONDS:
        await session.execute(
            update(WebSession).where(WebSession.id == web.id).values(last_seen_at=now)
        )
        await session.commit()
    who = Principal(
        user_id=user.id, name=user.name, role=users.check_role(user.role), session_id=web.id
    )
    return who, web.csrf_token


def csrf_matches(expected: str, presented: str | None) -> bool:
    """Whether the presented CSRF token is the session's (in constant time)."""
    return presented is not None and hmac.compare_digest(expected, presented)


async def sign_out(session: AsyncSession, who: Principal, now: datetime) -> None:
    """End the principal's session; its cookie is worthless from now on."""
    async with session.begin():
        await session.execute(
            update(WebSession)
            .where(WebSession.id == who.session_id, WebSession.ended_at.is_(None))
            .values(ended_at=now)
        )
        _audit(session, who.name, who.user_id, "signout", {})


def _throttled(user: User, settings: GatewaySettings, now: datetime) -> Throttled | None:
    if user.locked_until is not None and now < user.locked_until:
        wait = (user.locked_until - now).total_seconds()
        return Throttled(
            f"This account is locked after {settings.gateway_signin_lock_after} wrong "
            f"passwords until {user.locked_until:%H:%M:%S} UTC ({math.ceil(wait)} s); an "
            "admin can tell you more.",
            retry_after=wait,
        )
    wait = slow_wait(user.failed_signins, settings)
    if wait and user.last_failed_at is not None:
        left = (user.last_failed_at + timedelta(seconds=wait) - now).total_seconds()
        if left > 0:
            return Throttled(
                f"{user.failed_signins} wrong passwords in a row: wait {math.ceil(left)} s "
                "before the next attempt.",
                retry_after=left,
            )
    return None


def _wrong(user: User, settings: GatewaySettings, now: datetime) -> SignInRefused:
    user.failed_signins += 1
    user.last_failed_at = now
    if user.failed_signins >= settings.gateway_signin_lock_after:
        lock = timedelta(minutes=settings.gateway_signin_lock_minutes)
        user.locked_until = now + lock
        user.failed_signins = 0
        return Throttled(
            f"The password is wrong, {settings.gateway_signin_lock_after} times in a row: "
            f"this account is locked until {user.locked_until:%H:%M:%S} UTC.",
            retry_after=lock.total_seconds(),
        )
    return WrongCredentials(_wrong_detail(user.failed_signins, settings))


def _wrong_detail(failed: int, settings: GatewaySettings) -> str:
    left = settings.gateway_signin_lock_after - failed
    wait = slow_wait(failed, settings)
    then = f" Wait {math.ceil(wait)} s before the next attempt." if wait else ""
    return f"The name or the password is wrong. {left} more wrong attempts lock the account.{then}"


def _open(session: AsyncSession, user: User, settings: GatewaySettings, now: datetime) -> SignedIn:
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires_at = now + timedelta(hours=settings.gateway_session_hours)
    session.add(
        WebSession(
            id=session_id(token),
            user_id=user.id,
            csrf_token=csrf,
            created_at=now,
            last_seen_at=now,
            expires_at=expires_at,
        )
    )
    return SignedIn(token, csrf, expires_at, users.check_role(user.role), user.name)


def _audit(
    session: AsyncSession, name: str, user_id: int | None, action: str, detail: dict[str, object]
) -> None:
    actor = audit.Actor(name=name.strip()[:100], user_id=user_id)
    audit.record(session, actor, action, detail=detail)
