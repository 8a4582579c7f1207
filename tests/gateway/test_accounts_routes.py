"""Users and keys over HTTP for admins (`/v1/users`, `/v1/keys`) against the real gateway
and PostgreSQL: what each does, that it works at once, who may, and the audit rows.

Names carry a uuid, since the session's database is shared.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from common.db import session_factory
from common.models import AuditEntry

pytestmark = pytest.mark.integration

PASSWORD = "typhoon shelter 2026"


def _name(who: str) -> str:
    return f"{who} {uuid.uuid4().hex[:8]}"


async def _audited(engine: AsyncEngine, action: str, key: str, value: Any) -> list[AuditEntry]:
    async with session_factory(engine)() as session:
        rows = await session.scalars(select(AuditEntry).where(AuditEntry.action == action))
        return [row for row in rows if row.detail.get(key) == value]


async def test_an_admin_creates_a_user_who_signs_in(
    client: httpx.AsyncClient, admin: dict[str, str], engine: AsyncEngine
) -> None:
    name = _name("desk")
    created = await client.post(
        "/v1/users", headers=admin, json={"name": name, "role": "operator", "password": PASSWORD}
    )
    assert created.status_code == 201, created.text
    user = created.json()
    assert (user["name"], user["role"], user["state"], user["password"]) == (
        name,
        "operator",
        "active",
        True,
    )
    assert user["active_keys"] == 0
    listed = (await client.get("/v1/users", headers=admin)).json()
    assert [u for u in listed if u["name"] == name] == [user]
    signed_in = await client.post("/v1/session", json={"name": name, "password": PASSWORD})
    assert signed_in.status_code == 200
    assert signed_in.json()["role"] == "operator"
    [row] = await _audited(engine, "user.create", "name", name)
    assert row.actor == "test admin"
    assert row.detail == {"name": name, "role": "operator", "password": True}


async def test_a_user_is_refused_with_its_field(
    client: httpx.AsyncClient, admin: dict[str, str], engine: AsyncEngine
) -> None:
    name = _name("twice")
    first = await client.post("/v1/users", headers=admin, json={"name": name, "role": "viewer"})
    assert first.status_code == 201
    assert first.json()["password"] is False
    again = await client.post("/v1/users", headers=admin, json={"name": name, "role": "admin"})
    assert again.status_code == 409
    short = await client.post(
        "/v1/users", headers=admin, json={"name": _name("short"), "role": "viewer", "password": "x"}
    )
    assert short.status_code == 422
    assert short.json()["errors"][0]["field"] == "password"
    # blank, or NUL, which PostgreSQL cannot store (it was a 500)
    for bad in ("   ", "\x1c", "nul\x00name"):
        blank = await client.post("/v1/users", headers=admin, json={"name": bad, "role": "viewer"})
        assert blank.status_code == 422, (bad, blank.text)
        assert blank.json()["errors"][0]["field"] == "name"
    spaces = await client.post(
        "/v1/users",
        headers=admin,
        json={"name": _name("sp"), "role": "viewer", "password": " " * 12},
    )
    assert spaces.status_code == 422
    assert spaces.json()["errors"][0]["field"] == "password"
    role = await client.post("/v1/users", headers=admin, json={"name": _name("r"), "role": "root"})
    assert role.status_code == 422
    assert role.json()["errors"][0]["field"] == "role"
    assert len(await _audited(engine, "user.create", "name", name)) == 1


async def test_a_key_works_at_once_and_stops_when_revoked(
    client: httpx.AsyncClient, admin: dict[str, str], engine: AsyncEngine
) -> None:
    name = _name("feed")
    user = await client.post("/v1/users", headers=admin, json={"name": name, "role": "viewer"})
    created = await client.post(
        "/v1/keys",
        headers=admin,
        json={"user_id": user.json()["id"], "label": "weather feed", "machine_feed": True},
    )
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["key"].startswith(f"allim_{key['prefix']}_")
    assert (key["user"], key["label"], key["machine_feed"], key["revoked_at"]) == (
        name,
        "weather feed",
        True,
        None,
    )
    assert (await client.get("/v1/alerts", headers={"X-API-Key": key["key"]})).status_code == 200
    listed = (await client.get("/v1/keys", headers=admin)).json()
    for label in ("\x1c ", "feed\x00"):  # blank, and NUL (it was a 500): no key is made
        bad = {"user_id": user.json()["id"], "label": label}
        refused = await client.post("/v1/keys", headers=admin, json=bad)
        assert refused.status_code == 422, (label, refused.text)
        assert refused.json()["errors"][0]["field"] == "label"
    # a user id past PostgreSQL's integer (it was a 500)
    huge = {"user_id": 2**40, "label": "feed"}
    assert (await client.post("/v1/keys", headers=admin, json=huge)).status_code == 422
    # types the document does not allow, which lax parsing took (schemathesis sent them)
    for loose in (
        {"user_id": user.json()["id"], "machine_feed": 0},
        {"user_id": str(user.json()["id"])},
        {"user_id": True},
    ):
        answer = await client.post("/v1/keys", headers=admin, json=loose)
        assert answer.status_code == 422, (loose, answer.text)
    # a number without a fraction is an integer to JSON Schema, `7.0` too (schemathesis sent it)
    whole = {"user_id": float(user.json()["id"]), "label": "whole"}
    assert (await client.post("/v1/keys", headers=admin, json=whole)).status_code == 201
    for verb in ("disable", "unlock"):
        answer = await client.post(f"/v1/users/{2**40}/{verb}", headers=admin)
        assert answer.status_code == 422, answer.text
    assert len((await client.get("/v1/keys", headers=admin)).json()) == len(listed) + 1
    [shown] = [k for k in listed if k["prefix"] == key["prefix"]]
    assert "key" not in shown

    revoked = await client.post(f"/v1/keys/{key['prefix']}/revoke", headers=admin)
    assert revoked.status_code == 204
    assert (await client.get("/v1/alerts", headers={"X-API-Key": key["key"]})).status_code == 401
    assert (await client.post(f"/v1/keys/{key['prefix']}/revoke", headers=admin)).status_code == 404
    [made] = await _audited(engine, "key.create", "prefix", key["prefix"])
    [gone] = await _audited(engine, "key.revoke", "prefix", key["prefix"])
    assert made.actor == gone.actor == "test admin"
    assert made.detail["user"] == name


async def test_disable_stops_the_users_keys_and_unlock_ends_a_lock(
    client: httpx.AsyncClient, admin: dict[str, str], engine: AsyncEngine
) -> None:
    name = _name("leaver")
    user = await client.post("/v1/users", headers=admin, json={"name": name, "role": "viewer"})
    user_id = user.json()["id"]
    key = (await client.post("/v1/keys", headers=admin, json={"user_id": user_id})).json()
    assert key["label"] == name
    disabled = await client.post(f"/v1/users/{user_id}/disable", headers=admin)
    assert disabled.status_code == 200
    assert disabled.json()["state"] == "disabled"
    assert (await client.get("/v1/alerts", headers={"X-API-Key": key["key"]})).status_code == 401
    # a second disable changes and records nothing; a disabled user gets no key
    assert (await client.post(f"/v1/users/{user_id}/disable", headers=admin)).status_code == 200
    assert len(await _audited(engine, "user.disable", "name", name)) == 1
    refused = await client.post("/v1/keys", headers=admin, json={"user_id": user_id})
    assert refused.status_code == 409

    unlocked = await client.post(f"/v1/users/{user_id}/unlock", headers=admin)
    assert unlocked.status_code == 200
    assert len(await _audited(engine, "user.unlock", "name", name)) == 1
    assert (await client.post("/v1/users/999999999/unlock", headers=admin)).status_code == 404


async def test_only_admins_manage_and_no_admin_disables_themself(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    operator: dict[str, str],
    approver: dict[str, str],
) -> None:
    for headers in (operator, approver):
        assert (await client.get("/v1/users", headers=headers)).status_code == 403
        assert (await client.get("/v1/keys", headers=headers)).status_code == 403
        made = await client.post(
            "/v1/users", headers=headers, json={"name": _name("x"), "role": "admin"}
        )
        assert made.status_code == 403
    assert (await client.get("/v1/users")).status_code == 401
    users = (await client.get("/v1/users", headers=admin)).json()
    [me] = [u for u in users if u["name"] == "test admin"]
    refused = await client.post(f"/v1/users/{me['id']}/disable", headers=admin)
    assert refused.status_code == 409
    assert (await client.get("/v1/users", headers=admin)).status_code == 200
