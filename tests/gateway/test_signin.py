"""Sign-in for people against the real gateway and PostgreSQL: the session cookie, CSRF on
every change, sign-out, expiry, disabled users, throttling and locking, and bad input.

Each test makes people of its own (a uuid in the name), since the session's database is
shared; waits and expiries are made deterministic by moving the stored instants into the
past (`web_sessions` and `users` are not append-only), never by sleeping.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.gateway.bodies import AlertJson
from tests.gateway.conftest import BASE_URL

from cli.main import main
from common.db import session_factory
from common.models import Alert, AuditEntry, User, WebSession
from gateway import signin, users
from gateway.auth import create_key
from gateway.config import GatewaySettings
from gateway.users import MAX_NAME, MAX_PASSWORD, Role

pytestmark = pytest.mark.integration

PASSWORD = "typhoon shelter 2026"
WRONG = "typhoon shelter 2025"


# --- helpers ---------------------------------------------------------------------------


async def _person(
    engine: AsyncEngine, role: Role = "operator", password: str | None = PASSWORD
) -> str:
    """A new user of their own name with `role` and `password`; their name."""
    name = f"signin {role} {uuid.uuid4().hex[:8]}"
    async with session_factory(engine)() as session, session.begin():
        await users.create(session, name, role, password)
    return name


async def _sign_in(
    client: httpx.AsyncClient, name: str, password: str = PASSWORD
) -> httpx.Response:
    return await client.post("/v1/session", json={"name": name, "password": password})


async def _signed_in(
    client: httpx.AsyncClient, engine: AsyncEngine, role: Role = "operator"
) -> tuple[str, str]:
    """A new person with `role`, signed in on `client`: (name, the session's CSRF token)."""
    name = await _person(engine, role)
    answer = await _sign_in(client, name)
    assert answer.status_code == 200, answer.text
    return name, answer.json()["csrf_token"]


def _cookie(client: httpx.AsyncClient, settings: GatewaySettings) -> str:
    token = client.cookies.get(settings.gateway_session_cookie)
    assert token, "no session cookie"
    return token


@pytest.fixture
async def thief(
    gateway_app: FastAPI, gateway_settings: GatewaySettings
) -> AsyncIterator[httpx.AsyncClient]:
    """A second client, into whose cookie jar a test copies someone's session cookie."""
    transport = httpx.ASGITransport(app=gateway_app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


def _steal(thief: httpx.AsyncClient, token: str, settings: GatewaySettings) -> None:
    thief.cookies.set(settings.gateway_session_cookie, token, domain="gateway.test", path="/")


async def _user(engine: AsyncEngine, name: str) -> User:
    async with session_factory(engine)() as session:
        user = await session.scalar(select(User).where(User.name == name))
        assert user is not None
        return user


async def _set_user(engine: AsyncEngine, name: str, **values: Any) -> None:
    async with engine.begin() as connection:
        await connection.execute(update(User).where(User.name == name).values(**values))


async def _set_session(engine: AsyncEngine, token: str, **values: Any) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            update(WebSession).where(WebSession.id == signin.session_id(token)).values(**values)
        )


async def _sessions_of(engine: AsyncEngine, name: str) -> list[WebSession]:
    async with session_factory(engine)() as session:
        query = (
            select(WebSession).join(User, User.id == WebSession.user_id).where(User.name == name)
        )
        return list((await session.scalars(query)).all())


async def _alerts_by(engine: AsyncEngine, name: str) -> int:
    async with session_factory(engine)() as session:
        query = select(func.count()).select_from(Alert).join(User, User.id == Alert.author_id)
        return int(await session.scalar(query.where(User.name == name)) or 0)


async def _audit(engine: AsyncEngine, actor: str) -> list[AuditEntry]:
    async with session_factory(engine)() as session:
        query = select(AuditEntry).where(AuditEntry.actor == actor).order_by(AuditEntry.id)
        return list((await session.scalars(query)).all())


async def _actions(engine: AsyncEngine, actor: str) -> list[str]:
    return [row.action for row in await _audit(engine, actor)]


async def _wrong_passwords(
    client: httpx.AsyncClient, engine: AsyncEngine, name: str, count: int
) -> list[httpx.Response]:
    """`count` wrong passwords, each after the previous one's wait has passed."""
    answers = []
    for _ in range(count):
        await _pass_the_wait(engine, name)
        answers.append(await _sign_in(client, name, WRONG))
    return answers


async def _pass_the_wait(engine: AsyncEngine, name: str) -> None:
    # the longest wait before the lock is a few minutes; a day earlier is past any of them
    await _set_user(engine, name, last_failed_at=User.last_failed_at - timedelta(days=1))


def _problem(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    detail: str = answer.json()["detail"]
    return detail


# --- signing in --------------------------------------------------------------------------


async def test_sign_in_with_json_sets_a_strict_http_only_cookie(
    client: httpx.AsyncClient, engine: AsyncEngine, gateway_settings: GatewaySettings
) -> None:
    name = await _person(engine, "approver")
    before = datetime.now(UTC)
    answer = await _sign_in(client, name)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["name"], body["role"]) == (name, "approver")
    assert len(body["csrf_token"]) >= 32
    expires_at = datetime.fromisoformat(body["expires_at"])
    hours = timedelta(hours=gateway_settings.gateway_session_hours)
    assert before + hours <= expires_at <= datetime.now(UTC) + hours
    assert answer.headers["cache-control"] == "no-store"

    cookie = answer.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")}
    assert "httponly" in attributes
    assert attributes["samesite"].lower() == "samesite=strict"
    assert attributes["path"] == "Path=/"
    assert "secure" not in attributes  # the test gateway's public URL is http
    assert attributes["max-age"] == f"Max-Age={int(hours.total_seconds())}"

    # the database holds the token's hash, not the token
    token = _cookie(client, gateway_settings)
    [row] = await _sessions_of(engine, name)
    assert row.id == signin.session_id(token) != token
    assert row.csrf_token == body["csrf_token"]
    assert row.ended_at is None
    assert await _actions(engine, name) == ["signin"]


async def test_sign_in_with_a_form_post(
    client: httpx.AsyncClient, engine: AsyncEngine, gateway_settings: GatewaySettings
) -> None:
    name = await _person(engine, "viewer")
    answer = await client.post("/v1/session", data={"name": name, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    assert (answer.json()["name"], answer.json()["role"]) == (name, "viewer")
    assert "httponly" in answer.headers["set-cookie"].lower()
    assert _cookie(client, gateway_settings)
    assert len(await _sessions_of(engine, name)) == 1


async def test_get_session_shows_who_is_signed_in_and_the_csrf_token(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    name = await _person(engine, "operator")
    opened = (await _sign_in(client, name)).json()
    answer = await client.get("/v1/session")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "name": name,
        "role": "operator",
        "csrf_token": opened["csrf_token"],
        "expires_at": opened["expires_at"],
    }
    # reading who is signed in changes nothing
    assert await _actions(engine, name) == ["signin"]


async def test_get_session_with_a_key_shows_the_keys_user_without_a_csrf_token(
    client: httpx.AsyncClient, viewer: dict[str, str]
) -> None:
    answer = await client.get("/v1/session", headers=viewer)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "name": "test viewer",
        "role": "viewer",
        "csrf_token": "",
        "expires_at": None,
    }


async def test_get_session_without_a_cookie_is_401(client: httpx.AsyncClient) -> None:
    detail = _problem(await client.get("/v1/session"), 401)
    assert "signed-in session" in detail


# --- CSRF --------------------------------------------------------------------------------


async def test_a_read_with_the_cookie_needs_no_csrf_token(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await _signed_in(client, engine, "viewer")
    answer = await client.get("/v1/alerts")
    assert answer.status_code == 200, answer.text


async def test_a_change_without_the_csrf_token_is_403_and_changes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, alert_json: AlertJson
) -> None:
    name, _ = await _signed_in(client, engine, "operator")
    detail = _problem(await client.post("/v1/alerts", json=alert_json()), 403)
    assert "X-CSRF-Token" in detail and "missing or wrong" in detail
    assert await _alerts_by(engine, name) == 0
    assert await _actions(engine, name) == ["signin"]


async def test_a_forged_csrf_token_is_403_and_changes_nothing(
    client: httpx.AsyncClient, thief: httpx.AsyncClient, engine: AsyncEngine, alert_json: AlertJson
) -> None:
    name, csrf = await _signed_in(client, engine, "operator")
    # the token of another session (the attacker's own) is as wrong as an invented one
    _, attackers = await _signed_in(thief, engine, "operator")
    for forged in ("", "forged", csrf[:-1], csrf.upper(), attackers):
        answer = await client.post(
            "/v1/alerts", json=alert_json(), headers={"X-CSRF-Token": forged}
        )
        _problem(answer, 403)
    assert await _alerts_by(engine, name) == 0
    assert await _actions(engine, name) == ["signin"]


async def test_the_right_csrf_token_lets_the_change_through(
    client: httpx.AsyncClient, engine: AsyncEngine, alert_json: AlertJson
) -> None:
    name, csrf = await _signed_in(client, engine, "operator")
    created = await client.post("/v1/alerts", json=alert_json(), headers={"X-CSRF-Token": csrf})
    assert created.status_code == 202, created.text
    assert await _alerts_by(engine, name) == 1
    user = await _user(engine, name)
    [signed_in, row] = await _audit(engine, name)
    # signed in, the actor is the person, with no key
    assert (row.action, row.user_id, row.key_id) == ("alert.create", user.id, None)
    assert str(row.alert_id) == created.json()["id"]
    assert signed_in.action == "signin"


async def test_a_form_post_carrying_the_csrf_token_passes_the_check(
    client: httpx.AsyncClient, engine: AsyncEngine, alert_json: AlertJson
) -> None:
    name, csrf = await _signed_in(client, engine, "operator")
    created = await client.post("/v1/alerts", json=alert_json(), headers={"X-CSRF-Token": csrf})
    alert_id = created.json()["id"]
    url = f"/v1/alerts/{alert_id}/cancel"

    _problem(await client.post(url, data={"csrf_token": "forged"}), 403)
    _problem(await client.post(url, data={"other_field": csrf}), 403)
    assert (await client.get(f"/v1/alerts/{alert_id}")).json()["status"] != "cancelled"

    cancelled = await client.post(url, data={"csrf_token": csrf})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert await _actions(engine, name) == ["signin", "alert.create", "alert.cancel"]


async def test_a_viewer_session_cannot_create_alerts(
    client: httpx.AsyncClient, engine: AsyncEngine, alert_json: AlertJson
) -> None:
    name, csrf = await _signed_in(client, engine, "viewer")
    answer = await client.post("/v1/alerts", json=alert_json(), headers={"X-CSRF-Token": csrf})
    detail = _problem(answer, 403)
    assert f"{name} is viewer" in detail
    assert await _alerts_by(engine, name) == 0
    assert await _actions(engine, name) == ["signin"]


# --- sign-out and expiry -----------------------------------------------------------------


async def test_sign_out_ends_the_session_and_a_stolen_cookie_is_401(
    client: httpx.AsyncClient,
    thief: httpx.AsyncClient,
    engine: AsyncEngine,
    gateway_settings: GatewaySettings,
    alert_json: AlertJson,
) -> None:
    name, csrf = await _signed_in(client, engine, "operator")
    token = _cookie(client, gateway_settings)
    _steal(thief, token, gateway_settings)
    assert (await thief.get("/v1/session")).status_code == 200  # the copy works until...

    signed_out = await client.delete("/v1/session", headers={"X-CSRF-Token": csrf})
    assert signed_out.status_code == 204, signed_out.text
    cleared = signed_out.headers["set-cookie"]
    assert cleared.startswith(f"{gateway_settings.gateway_session_cookie}=")
    assert "max-age=0" in cleared.lower()
    assert client.cookies.get(gateway_settings.gateway_session_cookie) is None

    # ...sign-out: the same cookie value, replayed, is refused for reads and changes alike
    assert _cookie(thief, gateway_settings) == token
    assert "sign in again" in _problem(await thief.get("/v1/session"), 401)
    replayed = await thief.post("/v1/alerts", json=alert_json(), headers={"X-CSRF-Token": csrf})
    _problem(replayed, 401)
    assert await _alerts_by(engine, name) == 0
    [row] = await _sessions_of(engine, name)
    assert row.ended_at is not None
    assert await _actions(engine, name) == ["signin", "signout"]


async def test_sign_out_without_the_csrf_token_is_403_and_the_session_goes_on(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    name, _ = await _signed_in(client, engine, "viewer")
    _problem(await client.delete("/v1/session"), 403)
    _problem(await client.delete("/v1/session", headers={"X-CSRF-Token": "forged"}), 403)
    assert (await client.get("/v1/session")).status_code == 200
    [row] = await _sessions_of(engine, name)
    assert row.ended_at is None
    assert await _actions(engine, name) == ["signin"]


async def test_signing_out_twice_is_401_the_second_time(
    client: httpx.AsyncClient,
    thief: httpx.AsyncClient,
    engine: AsyncEngine,
    gateway_settings: GatewaySettings,
) -> None:
    name, csrf = await _signed_in(client, engine, "viewer")
    _steal(thief, _cookie(client, gateway_settings), gateway_settings)
    assert (await client.delete("/v1/session", headers={"X-CSRF-Token": csrf})).status_code == 204
    _problem(await thief.delete("/v1/session", headers={"X-CSRF-Token": csrf}), 401)
    assert await _actions(engine, name) == ["signin", "signout"]


async def test_an_expired_session_is_401(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    gateway_settings: GatewaySettings,
    alert_json: AlertJson,
) -> None:
    name, csrf = await _signed_in(client, engine, "operator")
    token = _cookie(client, gateway_settings)
    await _set_session(engine, token, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert "expired" in _problem(await client.get("/v1/session"), 401)
    answer = await client.post("/v1/alerts", json=alert_json(), headers={"X-CSRF-Token": csrf})
    _problem(answer, 401)
    assert await _alerts_by(engine, name) == 0


async def test_a_session_unused_too_long_is_401(
    client: httpx.AsyncClient, engine: AsyncEngine, gateway_settings: GatewaySettings
) -> None:
    await _signed_in(client, engine, "viewer")
    token = _cookie(client, gateway_settings)
    idle = timedelta(minutes=gateway_settings.gateway_session_idle_minutes)
    await _set_session(engine, token, last_seen_at=datetime.now(UTC) - idle - timedelta(seconds=1))
    assert "unused too long" in _problem(await client.get("/v1/alerts"), 401)


async def test_using_a_session_keeps_it_from_going_idle(
    client: httpx.AsyncClient, engine: AsyncEngine, gateway_settings: GatewaySettings
) -> None:
    name, _ = await _signed_in(client, engine, "viewer")
    token = _cookie(client, gateway_settings)
    idle = timedelta(minutes=gateway_settings.gateway_session_idle_minutes)
    almost = datetime.now(UTC) - idle + timedelta(minutes=1)
    await _set_session(engine, token, last_seen_at=almost)
    before = datetime.now(UTC)
    assert (await client.get("/v1/alerts")).status_code == 200
    [row] = await _sessions_of(engine, name)
    # the use is recorded, so the idle limit counts from now, not from the sign-in
    assert row.last_seen_at >= before
    assert row.expires_at > row.last_seen_at


async def test_one_sessions_end_leaves_the_users_other_sessions(
    client: httpx.AsyncClient,
    thief: httpx.AsyncClient,
    engine: AsyncEngine,
    gateway_settings: GatewaySettings,
) -> None:
    name, _ = await _signed_in(client, engine, "viewer")
    assert (await _sign_in(thief, name)).status_code == 200  # the same person, a second browser
    token = _cookie(client, gateway_settings)
    await _set_session(engine, token, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    _problem(await client.get("/v1/session"), 401)
    assert (await thief.get("/v1/session")).json()["name"] == name


# --- disabled users ----------------------------------------------------------------------


async def test_a_disabled_users_key_and_session_stop_working(
    client: httpx.AsyncClient, thief: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    name, _ = await _signed_in(client, engine, "operator")
    async with session_factory(engine)() as session, session.begin():
        key = await create_key(session, await users.named(session, name), "script")
    assert (await thief.get("/v1/alerts", headers={"X-API-Key": key})).status_code == 200
    assert (await client.get("/v1/alerts")).status_code == 200

    async with session_factory(engine)() as session, session.begin():
        assert users.disable(await users.named(session, name, lock=True))

    _problem(await thief.get("/v1/alerts", headers={"X-API-Key": key}), 401)
    _problem(await client.get("/v1/alerts"), 401)
    # nor can they sign in again, and the answer does not say why
    detail = _problem(await _sign_in(thief, name), 401)
    assert detail.startswith("The name or the password is wrong.")
    rows = await _audit(engine, name)
    assert [r.action for r in rows] == ["signin", "signin.failed"]
    assert rows[-1].detail["reason"] == "disabled"


# --- throttling and locking --------------------------------------------------------------


async def test_wrong_passwords_say_how_many_attempts_are_left(
    client: httpx.AsyncClient, engine: AsyncEngine, gateway_settings: GatewaySettings
) -> None:
    name = await _person(engine)
    lock_after = gateway_settings.gateway_signin_lock_after
    for failed in range(1, gateway_settings.gateway_signin_slow_after):
        detail = _problem(await _sign_in(client, name, WRONG), 401)
        assert detail == (
            f"The name or the password is wrong. {lock_after - failed} more wrong attempts "
            "lock the account."
        )
    user = await _user(engine, name)
    assert user.failed_signins == gateway_settings.gateway_signin_slow_after - 1
    assert user.locked_until is None
    assert await _sessions_of(engine, name) == []
    rows = await _audit(engine, name)
    assert [r.action for r in rows] == ["signin.failed"] * user.failed_signins
    assert [r.detail["failed_in_a_row"] for r in rows] == list(range(1, user.failed_signins + 1))
    assert all(r.user_id == user.id and r.detail["reason"] == "wrong password" for r in rows)


async def test_the_right_password_resets_the_count(
    client: httpx.AsyncClient, engine: AsyncEngine, gateway_settings: GatewaySettings
) -> None:
    name = await _person(engine)
    for _ in range(gateway_settings.gateway_signin_slow_after - 1):
        _problem(await _sign_in(client, name, WRONG), 401)
    assert (await _sign_in(client, name)).status_code == 200
    assert (await _user(engine, name)).failed_signins == 0
    lock_after = gateway_settings.gateway_signin_lock_after
    detail = _problem(await _sign_in(client, name, WRONG), 401)
    assert f"{lock_after - 1} more wrong attempts" in detail


async def test_after_slow_after_wrong_passwords_the_next_attempt_must_wait(
    client: httpx.AsyncClient, engine: AsyncEngine, gateway_settings: GatewaySettings
) -> None:
    name = await _person(engine)
    slow_after = gateway_settings.gateway_signin_slow_after
    wait = gateway_settings.gateway_signin_slow_seconds
    answers = [await _sign_in(client, name, WRONG) for _ in range(slow_after)]
    assert f"Wait {wait:.0f} s before the next attempt." in _problem(answers[-1], 401)

    # at once, even with the right password: refused without looking at the password
    refused = await _sign_in(client, name)
    detail = _problem(refused, 429)
    assert detail.startswith(f"{slow_after} wrong passwords in a row: wait ")
    assert 1 <= int(refused.headers["retry-after"]) <= wait
    assert "set-cookie" not in refused.headers
    assert await _sessions_of(engine, name) == []
    # the refused attempt is recorded, but not counted as a wrong password
    assert (await _user(engine, name)).failed_signins == slow_after
    rows = await _audit(engine, name)
    assert [r.action for r in rows] == ["signin.failed"] * slow_after + ["signin.refused"]
    assert rows[-1].detail["reason"] == detail


async def test_once_the_wait_has_passed_the_right_password_signs_in(
    client: httpx.AsyncClient, engine: AsyncEngine, gateway_settings: GatewaySettings
) -> None:
    name = await _person(engine)
    for _ in range(gateway_settings.gateway_signin_slow_after):
        _problem(await _sign_in(client, name, WRONG), 401)
    await _pass_the_wait(engine, name)
    assert (await _sign_in(client, name)).status_code == 200
    user = await _user(engine, name)
    assert (user.failed_signins, user.locked_until) == (0, None)


async def test_lock_after_wrong_passwords_locks_the_account_also_for_the_right_one(
    client: httpx.AsyncClient, engine: AsyncEngine, gateway_settings: GatewaySettings
) -> None:
    name = await _person(engine)
    lock_after = gateway_settings.gateway_signin_lock_after
    lock = timedelta(minutes=gateway_settings.gateway_signin_lock_minutes)
    before = datetime.now(UTC)
    answers = await _wrong_passwords(client, engine, name, lock_after)
    assert [a.status_code for a in answers] == [401] * (lock_after - 1) + [429]
    locked = _problem(answers[-1], 429)
    assert f"wrong, {lock_after} times in a row: this account is locked until " in locked
    assert int(answers[-1].headers["retry-after"]) == int(lock.total_seconds())
    user = await _user(engine, name)
    assert user.locked_until is not None
    assert before + lock <= user.locked_until <= datetime.now(UTC) + lock
    assert f"{user.locked_until:%H:%M:%S} UTC" in locked

    # the right password, with no slow-down wait left, is still refused until the lock ends
    await _pass_the_wait(engine, name)
    refused = await _sign_in(client, name)
    detail = _problem(refused, 429)
    assert f"locked after {lock_after} wrong passwords until {user.locked_until:%H:%M:%S}" in detail
    assert 0 < int(refused.headers["retry-after"]) <= lock.total_seconds()
    assert await _sessions_of(engine, name) == []
    rows = await _audit(engine, name)
    assert [r.action for r in rows] == ["signin.failed"] * lock_after + ["signin.refused"]


async def test_a_lock_that_has_run_out_lets_the_right_password_in(
    client: httpx.AsyncClient, engine: AsyncEngine, gateway_settings: GatewaySettings
) -> None:
    name = await _person(engine)
    await _wrong_passwords(client, engine, name, gateway_settings.gateway_signin_lock_after)
    await _set_user(engine, name, locked_until=datetime.now(UTC) - timedelta(seconds=1))
    assert (await _sign_in(client, name)).status_code == 200


async def test_allim_users_unlock_lets_a_locked_user_in(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    gateway_settings: GatewaySettings,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = await _person(engine)
    await _wrong_passwords(client, engine, name, gateway_settings.gateway_signin_lock_after)
    _problem(await _sign_in(client, name), 429)

    monkeypatch.setenv("ALLIM_DATABASE_URL", database_url)
    assert await asyncio.to_thread(main, ["users", "unlock", "--name", name]) == 0
    answer = await _sign_in(client, name)
    assert answer.status_code == 200, answer.text
    assert answer.json()["name"] == name


async def test_an_unknown_name_gets_the_answer_of_a_wrong_password(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    known = await _person(engine)
    unknown = f"nobody {uuid.uuid4().hex[:8]}"
    wrong = _problem(await _sign_in(client, known, WRONG), 401)
    nobody = await _sign_in(client, unknown)
    assert _problem(nobody, 401) == wrong
    assert "retry-after" not in nobody.headers
    async with session_factory(engine)() as session:
        assert await users.find(session, unknown) is None
    [row] = await _audit(engine, unknown)
    assert (row.action, row.user_id, row.detail) == (
        "signin.failed",
        None,
        {"reason": "unknown name"},
    )


async def test_a_user_without_a_password_cannot_sign_in(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    name = await _person(engine, "operator", password=None)
    for password in (PASSWORD, "allim: no such user"):
        detail = _problem(await _sign_in(client, name, password), 401)
        assert detail.startswith("The name or the password is wrong.")
    assert await _sessions_of(engine, name) == []


# --- bad input ---------------------------------------------------------------------------


async def _nothing_stored(engine: AsyncEngine, name: str) -> None:
    user = await _user(engine, name)
    assert (user.failed_signins, user.last_failed_at) == (0, None)
    assert await _sessions_of(engine, name) == []
    assert await _audit(engine, name) == []


def _fields(answer: httpx.Response) -> set[str]:
    _problem(answer, 422)
    return {error["field"] for error in answer.json()["errors"]}


async def test_missing_fields_are_422_naming_them(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    name = await _person(engine)
    assert _fields(await client.post("/v1/session", json={})) == {"name", "password"}
    assert _fields(await client.post("/v1/session", json={"name": name})) == {"password"}
    assert _fields(await client.post("/v1/session", data={"name": name})) == {"password"}
    assert _fields(await client.post("/v1/session", data={"password": PASSWORD})) == {"name"}
    empty = await client.post("/v1/session", json={"name": name, "password": ""})
    assert _fields(empty) == {"password"}
    # NUL, which PostgreSQL cannot store or compare (it was a 500)
    nul = await client.post("/v1/session", json={"name": name + "\x00", "password": PASSWORD})
    assert _fields(nul) == {"name"}
    await _nothing_stored(engine, name)


async def test_a_body_that_is_not_json_is_422(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/v1/session", content=b"{name: x", headers={"Content-Type": "application/json"}
    )
    assert _fields(answer) == {"body"}


async def test_neither_json_nor_a_form_is_415(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    name = await _person(engine)
    for content_type in ("text/plain", "application/xml", None):
        headers = {"Content-Type": content_type} if content_type else {}
        answer = await client.post(
            "/v1/session", content=f"name={name}&password={PASSWORD}".encode(), headers=headers
        )
        assert "application/json or a form post" in _problem(answer, 415)
    await _nothing_stored(engine, name)


async def test_an_over_long_password_or_name_is_422(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    name = await _person(engine)
    long_password = {"name": name, "password": "p" * (MAX_PASSWORD + 1)}
    assert _fields(await client.post("/v1/session", json=long_password)) == {"password"}
    assert _fields(await client.post("/v1/session", data=long_password)) == {"password"}
    long_name = {"name": "n" * (MAX_NAME + 1), "password": PASSWORD}
    assert _fields(await client.post("/v1/session", json=long_name)) == {"name"}
    # refused before the password is looked at: not a wrong attempt
    await _nothing_stored(engine, name)


# --- the OpenAPI document ----------------------------------------------------------------


async def test_the_openapi_document_carries_the_session_routes_and_their_errors(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    routes = spec["paths"]["/v1/session"]
    expected = {
        "post": {"200", "401", "422", "429"},
        "get": {"200", "401"},
        "delete": {"204", "401", "403"},
    }
    for method, codes in expected.items():
        responses = routes[method]["responses"]
        assert codes <= set(responses), method
        for code in codes - {"200", "204"}:
            assert "application/problem+json" in responses[code]["content"], (method, code)
    bodies = routes["post"]["requestBody"]["content"]
    assert {"application/json", "application/x-www-form-urlencoded"} <= set(bodies)
    assert {"Credentials", "SessionPublic"} <= set(spec["components"]["schemas"])
