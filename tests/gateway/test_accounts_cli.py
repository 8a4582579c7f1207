"""`allim users` and `allim keys` on the session's database, as an admin runs them on the
server, and what they change at the real gateway: sign-in, keys, locks, disabled users.

Every change is audited with the system user as the actor (`cli:<login>`); every refusal
leaves the database as it was. Names carry a uuid, since the database is shared.
"""

from __future__ import annotations

import asyncio
import getpass
import io
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.main import main
from common.db import session_factory
from common.models import ApiKey, AuditEntry, User
from gateway import users
from gateway.auth import authenticate

pytestmark = pytest.mark.integration

PASSWORD = "typhoon shelter 2026"
OTHER_PASSWORD = "flood warning 2027"
SHELL_ACTOR = f"cli:{getpass.getuser()}"


# --- helpers ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _on_the_test_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLIM_DATABASE_URL", database_url)


def _name(what: str = "person") -> str:
    return f"cli {what} {uuid.uuid4().hex[:8]}"


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))


async def _allim(*argv: str) -> int:
    # the commands run their own event loop: run them off this one
    return await asyncio.to_thread(main, list(argv))


async def _refused(*argv: str) -> str:
    """The message of a command that refuses (exits with a message, not a status)."""
    with pytest.raises(SystemExit) as exc:
        await _allim(*argv)
    assert isinstance(exc.value.code, str), exc.value.code
    return exc.value.code


async def _create(monkeypatch: pytest.MonkeyPatch, name: str, role: str = "operator") -> None:
    _stdin(monkeypatch, PASSWORD + "\n")
    argv = ("users", "create", "--name", name, "--role", role, "--password-stdin")
    assert await _allim(*argv) == 0


async def _new_key(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert await _allim("keys", "create", *argv) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert key.startswith("allim_")
    return key


async def _user(engine: AsyncEngine, name: str) -> User | None:
    async with session_factory(engine)() as session:
        user: User | None = await session.scalar(select(User).where(User.name == name))
        return user


async def _set_user(engine: AsyncEngine, name: str, **values: Any) -> None:
    async with engine.begin() as connection:
        await connection.execute(update(User).where(User.name == name).values(**values))


async def _audited(engine: AsyncEngine, field: str, value: str) -> list[AuditEntry]:
    """Audit rows whose detail's `field` is `value`, oldest first."""
    async with session_factory(engine)() as session:
        query = select(AuditEntry).where(AuditEntry.detail[field].astext == value)
        return list((await session.scalars(query.order_by(AuditEntry.id))).all())


async def _keys_of(engine: AsyncEngine, name: str) -> int:
    async with session_factory(engine)() as session:
        query = select(func.count()).select_from(ApiKey).join(User, User.id == ApiKey.user_id)
        return int(await session.scalar(query.where(User.name == name)) or 0)


async def _key_works(engine: AsyncEngine, key: str) -> bool:
    async with session_factory(engine)() as session:
        return await authenticate(session, key) is not None


async def _sign_in(client: httpx.AsyncClient, name: str, password: str = PASSWORD) -> int:
    answer = await client.post("/v1/session", json={"name": name, "password": password})
    return answer.status_code


def _by_the_shell(rows: list[AuditEntry]) -> bool:
    return all((r.actor, r.user_id, r.key_id) == (SHELL_ACTOR, None, None) for r in rows)


# --- users create ------------------------------------------------------------------------


async def test_users_create_with_a_password_from_stdin(
    engine: AsyncEngine,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = _name()
    await _create(monkeypatch, name, "approver")
    assert f"User '{name}' created with the role approver." in capsys.readouterr().out
    user = await _user(engine, name)
    assert user is not None and user.role == "approver"
    assert user.password_hash is not None and PASSWORD not in user.password_hash
    assert users.password_matches(user.password_hash, PASSWORD)
    [row] = await _audited(engine, "name", name)
    assert row.action == "user.create" and _by_the_shell([row])
    assert row.detail == {"name": name, "role": "approver", "password": True}
    # and the person signs in at the gateway with it
    assert await _sign_in(client, name) == 200


async def test_users_create_without_a_password_makes_a_keys_only_user(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    name = _name("feed owner")
    assert (
        await _allim("users", "create", "--name", name, "--role", "operator", "--no-password") == 0
    )
    user = await _user(engine, name)
    assert user is not None and user.password_hash is None
    [row] = await _audited(engine, "name", name)
    assert row.detail["password"] is False
    assert await _sign_in(client, name) == 401


async def test_users_create_refuses_an_unknown_role(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = _name()
    _stdin(monkeypatch, PASSWORD + "\n")
    with pytest.raises(SystemExit) as exc:
        await _allim("users", "create", "--name", name, "--role", "root", "--password-stdin")
    assert exc.value.code == 2
    assert "invalid choice: 'root'" in capsys.readouterr().err
    assert await _user(engine, name) is None


async def test_users_create_refuses_a_short_password_and_stores_nothing(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _name()
    _stdin(monkeypatch, "short\n")
    message = await _refused(
        "users", "create", "--name", name, "--role", "viewer", "--password-stdin"
    )
    assert "12 to 256 characters; this one has 5" in message
    assert message.endswith("Nothing was changed.")
    assert await _user(engine, name) is None
    assert await _audited(engine, "name", name) == []


async def test_users_create_refuses_a_name_taken_also_with_spaces_around_it(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _name()
    await _create(monkeypatch, name, "viewer")
    for again in (name, f"  {name} "):
        _stdin(monkeypatch, OTHER_PASSWORD + "\n")
        argv = ("users", "create", "--name", again, "--role", "admin", "--password-stdin")
        assert f"A user named '{name}' exists already." in await _refused(*argv)
    user = await _user(engine, name)
    assert user is not None and user.role == "viewer"
    assert users.password_matches(user.password_hash, PASSWORD)
    assert [r.action for r in await _audited(engine, "name", name)] == ["user.create"]


async def test_a_password_is_not_taken_from_a_pipe_without_password_stdin(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _name()
    _stdin(monkeypatch, PASSWORD + "\n")  # not a terminal: no prompt to answer
    message = await _refused("users", "create", "--name", name, "--role", "viewer")
    assert "--password-stdin" in message
    assert await _user(engine, name) is None


# --- users list, password, unlock, disable -----------------------------------------------


async def test_users_list_shows_role_state_password_and_active_keys(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    active, locked, disabled = _name("active"), _name("locked"), _name("disabled")
    await _create(monkeypatch, active, "operator")
    assert (
        await _allim("users", "create", "--name", locked, "--role", "viewer", "--no-password") == 0
    )
    await _create(monkeypatch, disabled, "admin")
    await _new_key(capsys, "--user", active)
    revoked = await _new_key(capsys, "--user", active, "--label", "old laptop")
    assert await _allim("keys", "revoke", revoked.split("_")[1]) == 0
    until = datetime.now(UTC) + timedelta(minutes=10)
    await _set_user(engine, locked, locked_until=until)
    assert await _allim("users", "disable", "--name", disabled) == 0
    capsys.readouterr()

    assert await _allim("users", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "name\trole\tstate\tpassword\tactive keys"
    assert f"{active}\toperator\tactive\tyes\t1" in lines
    assert f"{locked}\tviewer\tlocked until {until:%H:%M:%S} UTC\tno\t0" in lines
    [line] = [line for line in lines if line.startswith(f"{disabled}\t")]
    assert line.startswith(f"{disabled}\tadmin\tdisabled {datetime.now(UTC):%Y-%m-%d}")
    assert line.endswith("\tyes\t0")


async def test_users_password_sets_a_new_one_and_unlocks(
    engine: AsyncEngine,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = _name()
    await _create(monkeypatch, name)
    await _set_user(
        engine, name, failed_signins=5, locked_until=datetime.now(UTC) + timedelta(hours=1)
    )
    assert await _sign_in(client, name) == 429

    _stdin(monkeypatch, OTHER_PASSWORD + "\n")
    assert await _allim("users", "password", "--name", name, "--password-stdin") == 0
    assert "the account is unlocked" in capsys.readouterr().out
    user = await _user(engine, name)
    assert user is not None and (user.failed_signins, user.locked_until) == (0, None)
    assert await _sign_in(client, name, PASSWORD) == 401
    assert await _sign_in(client, name, OTHER_PASSWORD) == 200
    rows = await _audited(engine, "name", name)
    assert [r.action for r in rows] == ["user.create", "user.password"] and _by_the_shell(rows)


async def test_users_password_refuses_a_short_one_and_keeps_the_old(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _name()
    await _create(monkeypatch, name)
    _stdin(monkeypatch, "x" * (users.MIN_PASSWORD - 1) + "\n")
    message = await _refused("users", "password", "--name", name, "--password-stdin")
    assert f"this one has {users.MIN_PASSWORD - 1}" in message
    user = await _user(engine, name)
    assert user is not None and users.password_matches(user.password_hash, PASSWORD)
    assert [r.action for r in await _audited(engine, "name", name)] == ["user.create"]


async def test_users_unlock_clears_the_lock(
    engine: AsyncEngine,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = _name()
    await _create(monkeypatch, name)
    await _set_user(
        engine, name, failed_signins=3, locked_until=datetime.now(UTC) + timedelta(hours=1)
    )
    assert await _allim("users", "unlock", "--name", name) == 0
    assert f"'{name}' may sign in again." in capsys.readouterr().out
    user = await _user(engine, name)
    assert user is not None and (user.failed_signins, user.locked_until) == (0, None)
    assert users.password_matches(user.password_hash, PASSWORD)  # the password stays
    rows = await _audited(engine, "name", name)
    assert [r.action for r in rows] == ["user.create", "user.unlock"] and _by_the_shell(rows)
    assert await _sign_in(client, name) == 200


async def test_users_disable_stops_keys_and_sessions(
    engine: AsyncEngine,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = _name()
    await _create(monkeypatch, name)
    key = await _new_key(capsys, "--user", name)
    assert await _sign_in(client, name) == 200
    assert (await client.get("/v1/alerts")).status_code == 200
    assert (await client.get("/v1/alerts", headers={"X-API-Key": key})).status_code == 200

    assert await _allim("users", "disable", "--name", name) == 0
    assert "keys and sessions stopped" in capsys.readouterr().out
    assert (await client.get("/v1/alerts")).status_code == 401
    assert (await client.get("/v1/alerts", headers={"X-API-Key": key})).status_code == 401
    assert await _sign_in(client, name) == 401

    # disabling again changes nothing and records nothing
    assert await _allim("users", "disable", "--name", name) == 0
    assert "was disabled already" in capsys.readouterr().out
    rows = await _audited(engine, "name", name)
    assert [r.action for r in rows] == ["user.create", "user.disable"] and _by_the_shell(rows)
    # nor can a disabled user be given a new key
    assert f"'{name}' is disabled." in await _refused("keys", "create", "--user", name)
    assert await _keys_of(engine, name) == 1


@pytest.mark.parametrize("action", ["password", "unlock", "disable"])
async def test_an_unknown_user_is_refused(
    action: str, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _name("nobody")
    _stdin(monkeypatch, PASSWORD + "\n")
    argv = ["users", action, "--name", name] + (
        ["--password-stdin"] if action == "password" else []
    )
    message = await _refused(*argv)
    assert message == f"No user is named '{name}'. Nothing was changed."
    assert await _user(engine, name) is None
    assert await _audited(engine, "name", name) == []


# --- keys ----------------------------------------------------------------------------------


async def test_keys_create_for_a_user_acts_with_the_users_role(
    engine: AsyncEngine,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = _name()
    await _create(monkeypatch, name, "viewer")
    key = await _new_key(capsys, "--user", name, "--label", "wall screen")
    async with session_factory(engine)() as session:
        principal = await authenticate(session, key)
    assert principal is not None
    assert (principal.name, principal.role, principal.machine_feed) == (name, "viewer", False)
    assert (await client.get("/v1/alerts", headers={"X-API-Key": key})).status_code == 200
    [row] = await _audited(engine, "user", name)
    assert row.action == "key.create" and _by_the_shell([row])
    assert row.detail == {
        "user": name,
        "label": "wall screen",
        "prefix": key.split("_")[1],
        "machine_feed": False,
    }


async def test_keys_create_machine_feed_marks_the_key(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = _name("warning system")
    assert (
        await _allim("users", "create", "--name", name, "--role", "operator", "--no-password") == 0
    )
    key = await _new_key(capsys, "--user", name, "--machine-feed")
    async with session_factory(engine)() as session:
        principal = await authenticate(session, key)
    assert principal is not None and principal.machine_feed
    [row] = await _audited(engine, "user", name)
    assert (row.detail["machine_feed"], row.detail["label"]) == (True, name)

    assert await _allim("keys", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "prefix\tuser\trole\tstate\tmachine feed\tlabel"
    assert f"{key.split('_')[1]}\t{name}\toperator\tactive\tyes\t{name}" in lines


async def test_keys_create_refuses_an_unknown_user(engine: AsyncEngine) -> None:
    name = _name("nobody")
    message = await _refused("keys", "create", "--user", name)
    assert message == f"No user is named '{name}'. Nothing was changed."
    assert await _audited(engine, "user", name) == []


async def test_keys_create_refuses_an_over_long_label(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _name()
    await _create(monkeypatch, name)
    label = "l" * (users.MAX_NAME + 1)
    message = await _refused("keys", "create", "--user", name, "--label", label)
    assert f"--label must be 1 to {users.MAX_NAME} characters." in message
    assert await _keys_of(engine, name) == 0


async def test_keys_revoke_stops_the_key_at_the_gateway(
    engine: AsyncEngine,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = _name()
    await _create(monkeypatch, name)
    kept = await _new_key(capsys, "--user", name, "--label", "kept")
    key = await _new_key(capsys, "--user", name, "--label", "lost phone")
    prefix = key.split("_")[1]
    assert await _allim("keys", "revoke", prefix) == 0
    assert f"Key {prefix} revoked." in capsys.readouterr().out
    assert (await client.get("/v1/alerts", headers={"X-API-Key": key})).status_code == 401
    # the user's other key goes on working
    assert (await client.get("/v1/alerts", headers={"X-API-Key": kept})).status_code == 200
    assert await _key_works(engine, kept) and not await _key_works(engine, key)

    assert await _allim("keys", "revoke", prefix) == 1
    assert f"No active key has the prefix '{prefix}'." in capsys.readouterr().out
    rows = await _audited(engine, "prefix", prefix)
    assert [r.action for r in rows] == ["key.create", "key.revoke"] and _by_the_shell(rows)
