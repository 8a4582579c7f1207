"""The audit log: one row per action in the action's transaction, the route, and the
trigger that keeps the table append-only."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.gateway.bodies import AlertJson

from common.db import session_factory
from common.models import ApiKey, AuditEntry
from gateway.auth import enrol

pytestmark = pytest.mark.integration

CAP_FILE = Path(__file__).with_name("cap_sample.xml")


async def _own_operator(engine: AsyncEngine) -> tuple[str, int, int, dict[str, str]]:
    """A fresh operator of their own name: (name, user id, key id, headers), so rows can be
    told apart."""
    name = f"audit operator {uuid.uuid4().hex[:8]}"
    async with session_factory(engine)() as session, session.begin():
        user, key = await enrol(session, name, "operator")
        key_id = await session.scalar(select(ApiKey.id).where(ApiKey.user_id == user.id))
    assert key_id is not None
    return name, user.id, key_id, {"X-API-Key": key}


async def _rows(engine: AsyncEngine, alert_id: str) -> list[AuditEntry]:
    async with session_factory(engine)() as session:
        query = select(AuditEntry).where(AuditEntry.alert_id == uuid.UUID(alert_id))
        return list((await session.scalars(query.order_by(AuditEntry.id))).all())


async def test_create_and_cancel_each_leave_one_row_with_actor_and_alert(
    client: httpx.AsyncClient, engine: AsyncEngine, alert_json: AlertJson
) -> None:
    name, user_id, key_id, headers = await _own_operator(engine)
    created = await client.post("/v1/alerts", json=alert_json(), headers=headers)
    assert created.status_code == 202, created.text
    alert_id = created.json()["id"]

    [row] = await _rows(engine, alert_id)
    assert (row.action, row.actor, row.key_id, row.user_id) == (
        "alert.create",
        name,
        key_id,
        user_id,
    )
    assert row.detail["category"] == "emergency"

    cancelled = await client.post(f"/v1/alerts/{alert_id}/cancel", headers=headers)
    assert cancelled.status_code == 200, cancelled.text
    # cancelling again changes nothing, so it records nothing
    assert (await client.post(f"/v1/alerts/{alert_id}/cancel", headers=headers)).status_code == 200
    rows = await _rows(engine, alert_id)
    assert [(r.action, r.actor, r.key_id) for r in rows] == [
        ("alert.create", name, key_id),
        ("alert.cancel", name, key_id),
    ]


async def test_a_replayed_create_records_nothing_more(
    client: httpx.AsyncClient, engine: AsyncEngine, alert_json: AlertJson
) -> None:
    _, _, _, headers = await _own_operator(engine)
    headers = {**headers, "Idempotency-Key": str(uuid.uuid4())}
    first = await client.post("/v1/alerts", json=alert_json(), headers=headers)
    again = await client.post("/v1/alerts", json=alert_json(), headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert len(await _rows(engine, first.json()["id"])) == 1


async def test_a_cap_alert_and_its_cancel_are_recorded(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    name, _, _, headers = await _own_operator(engine)
    identifier = f"AUDIT-{uuid.uuid4().hex[:8]}"
    alert_xml = CAP_FILE.read_bytes().replace(b"KMA-SAMPLE", identifier.encode())
    cap = {**headers, "Content-Type": "application/cap+xml"}
    created = await client.post("/v1/alerts", content=alert_xml, headers=cap)
    assert created.status_code == 202, created.text
    alert_id = created.json()["id"]
    [row] = await _rows(engine, alert_id)
    assert (row.action, row.actor, row.detail["cap_identifier"]) == (
        "alert.create",
        name,
        identifier,
    )


async def test_the_route_filters_and_pages(
    client: httpx.AsyncClient, approver: dict[str, str], engine: AsyncEngine, alert_json: AlertJson
) -> None:
    name, _, _, headers = await _own_operator(engine)
    alert_ids = []
    for _ in range(5):
        created = await client.post("/v1/alerts", json=alert_json(), headers=headers)
        assert created.status_code == 202, created.text
        alert_ids.append(created.json()["id"])
    cancelled = await client.post(f"/v1/alerts/{alert_ids[0]}/cancel", headers=headers)
    assert cancelled.status_code == 200

    seen: list[dict[str, object]] = []
    pages = 0
    params: dict[str, str | int] = {"actor": name, "limit": 2}
    while True:
        page = await client.get("/v1/audit", params=params, headers=approver)
        assert page.status_code == 200, page.text
        pages += 1
        seen += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
        params["cursor"] = cursor
    assert pages == 3
    ids = [row["id"] for row in seen]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 6
    assert {row["actor"] for row in seen} == {name}
    assert [row["action"] for row in seen].count("alert.create") == 5

    one = await client.get("/v1/audit", params={"alert_id": alert_ids[0]}, headers=approver)
    assert [r["action"] for r in one.json()["items"]] == ["alert.cancel", "alert.create"]
    cancels = await client.get(
        "/v1/audit", params={"actor": name, "action": "alert.cancel"}, headers=approver
    )
    assert [r["alert_id"] for r in cancels.json()["items"]] == [alert_ids[0]]


async def test_only_approvers_and_admins_read_the_log(
    client: httpx.AsyncClient, api_keys: dict[str, str]
) -> None:
    assert (await client.get("/v1/audit")).status_code == 401
    for role in ("viewer", "operator"):
        refused = await client.get("/v1/audit", headers={"X-API-Key": api_keys[role]})
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert "admin or approver role" in refused.json()["detail"]
    for role in ("approver", "admin"):
        read = await client.get("/v1/audit", headers={"X-API-Key": api_keys[role]})
        assert read.status_code == 200


async def test_a_bad_cursor_is_a_422(client: httpx.AsyncClient, approver: dict[str, str]) -> None:
    for cursor in ("nonsense", "YWxlcnR8MQ"):  # the second: "alert|1", not an audit cursor
        answer = await client.get("/v1/audit", params={"cursor": cursor}, headers=approver)
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["field"] == "cursor"


async def test_a_filter_postgresql_cannot_compare_is_a_422(
    client: httpx.AsyncClient, approver: dict[str, str]
) -> None:
    for field in ("actor", "action"):
        answer = await client.get("/v1/audit", params={field: "a\x00b"}, headers=approver)
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["field"] == field
    assert (await client.get("/v1/audit", params={"actor": "x"}, headers=approver)).is_success


async def test_an_opt_out_is_recorded(
    client: httpx.AsyncClient, approver: dict[str, str], engine: AsyncEngine
) -> None:
    name, _, _, headers = await _own_operator(engine)
    recipient = "010" + str(uuid.uuid4().int)[:8]
    put = await client.put(
        f"/v1/subscribers/{recipient}", json={"district": "장안구"}, headers=headers
    )
    assert put.status_code == 201, put.text
    assert (await client.delete(f"/v1/subscribers/{recipient}", headers=headers)).status_code == 200
    page = await client.get("/v1/audit", params={"actor": name}, headers=approver)
    [row] = page.json()["items"]
    assert row["action"] == "subscriber.opt_out"
    assert row["detail"] == {"recipient_no": recipient, "subscriber_id": put.json()["id"]}


async def test_an_import_is_recorded_and_a_refused_one_is_not(
    client: httpx.AsyncClient, approver: dict[str, str], engine: AsyncEngine
) -> None:
    name, user_id, key_id, headers = await _own_operator(engine)
    numbers = ["010" + str(uuid.uuid4().int)[:8] for _ in range(2)]
    csv = "recipient_no,district,tags\n" + "".join(f"{n},장안구,\n" for n in numbers)
    csv_headers = headers | {"Content-Type": "text/csv"}
    refused = await client.post(
        "/v1/subscribers:import", content="wrong,header\n1,2\n", headers=csv_headers
    )
    assert refused.status_code == 400
    imported = await client.post(
        "/v1/subscribers:import", content=csv + f"{numbers[0]},장안구,\n", headers=csv_headers
    )
    assert imported.status_code == 200, imported.text
    page = await client.get("/v1/audit", params={"actor": name}, headers=approver)
    [row] = page.json()["items"]
    assert (row["action"], row["user_id"], row["key_id"]) == ("subscribers.import", user_id, key_id)
    assert row["detail"] == {
        "format": "csv",
        "staged": 3,
        "duplicates": 1,
        "created": 2,
        "updated": 0,
    }


async def test_the_table_refuses_update_delete_and_truncate(
    client: httpx.AsyncClient, engine: AsyncEngine, alert_json: AlertJson
) -> None:
    _, _, _, headers = await _own_operator(engine)
    created = await client.post("/v1/alerts", json=alert_json(), headers=headers)
    alert_id = created.json()["id"]
    statements = {
        "UPDATE": f"UPDATE audit_log SET actor = 'someone else' WHERE alert_id = '{alert_id}'",
        "DELETE": f"DELETE FROM audit_log WHERE alert_id = '{alert_id}'",
        "TRUNCATE": "TRUNCATE audit_log",
    }
    for operation, statement in statements.items():
        with pytest.raises(DBAPIError, match=f"audit_log is append-only: {operation} is refused"):
            async with engine.begin() as connection:
                await connection.execute(text(statement))
    # also a statement that matches no row
    with pytest.raises(DBAPIError, match="append-only"):
        async with engine.begin() as connection:
            await connection.execute(text("DELETE FROM audit_log WHERE id < 0"))
    [row] = await _rows(engine, alert_id)
    assert row.action == "alert.create" and row.actor != "someone else"


async def test_the_openapi_document_carries_the_route_and_its_errors(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/v1/audit"]["get"]
    responses = operation["responses"]
    assert {"200", "401", "403", "422"} <= set(responses)
    for code in ("401", "403", "422"):
        assert "application/problem+json" in responses[code]["content"]
    names = {p["name"] for p in operation["parameters"]}
    assert names == {"alert_id", "actor", "action", "limit", "cursor"}
    assert {"AuditPage", "AuditEntryPublic"} <= set(spec["components"]["schemas"])
