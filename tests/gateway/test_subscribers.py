"""PUT/DELETE/GET /v1/subscribers/{recipient} and GET /v1/subscribers/counts, on PostgreSQL."""

from __future__ import annotations

import random
import uuid

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from common.db import session_factory
from common.models import Subscriber
from gateway.auth import Role
from gateway.subscribers import SubscriberError, check_recipient, check_tags

pytestmark = pytest.mark.integration


def new_number() -> str:
    return f"010{random.randrange(10**8):08d}"


def auth(keys: dict[Role, str], role: Role = "operator") -> dict[str, str]:
    return {"X-API-Key": keys[role]}


async def count_rows(engine: AsyncEngine, recipient_no: str) -> int:
    async with session_factory(engine)() as session:
        found = await session.scalar(
            select(func.count()).where(Subscriber.recipient_no == recipient_no)
        )
    return int(found or 0)


@pytest.mark.parametrize(
    "number", ["01012345678", "0101234567", "01112345678", "0161234567", "01998765432"]
)
def test_korean_mobile_numbers_pass(number: str) -> None:
    assert check_recipient(number) == number


@pytest.mark.parametrize(
    "number",
    ["010-1234-5678", "+821012345678", "0201234567", "012345678", "010123456789", "01512345678"],
)
def test_other_numbers_are_refused(number: str) -> None:
    with pytest.raises(SubscriberError, match="recipient_no"):
        check_recipient(number)


def test_tags_are_trimmed_deduplicated_and_bounded() -> None:
    assert check_tags([" 교통 ", "", "교통", "날씨"]) == ["교통", "날씨"]
    with pytest.raises(SubscriberError, match="longer than 64"):
        check_tags(["x" * 65])
    with pytest.raises(SubscriberError, match="at most 32"):
        check_tags([f"t{i}" for i in range(33)])


async def test_put_creates_then_updates(
    client: httpx.AsyncClient, api_keys: dict[Role, str]
) -> None:
    number = new_number()
    created = await client.put(
        f"/v1/subscribers/{number}",
        json={"district": "장안구", "tags": ["교통", "날씨"]},
        headers=auth(api_keys),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["recipient_no"], body["district"], body["tags"], body["status"]) == (
        number,
        "장안구",
        ["교통", "날씨"],
        "active",
    )
    assert body["opted_out_at"] is None

    updated = await client.put(
        f"/v1/subscribers/{number}", json={"district": "팔달구"}, headers=auth(api_keys)
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["id"] == body["id"]
    assert (updated.json()["district"], updated.json()["tags"]) == ("팔달구", [])

    fetched = await client.get(f"/v1/subscribers/{number}", headers=auth(api_keys, "viewer"))
    assert fetched.status_code == 200
    assert fetched.json()["district"] == "팔달구"


@pytest.mark.parametrize("number", ["010-1234-5678", "0201234567", "010123456789", "abc"])
async def test_put_refuses_bad_numbers_and_stores_nothing(
    client: httpx.AsyncClient, api_keys: dict[Role, str], engine: AsyncEngine, number: str
) -> None:
    response = await client.put(
        f"/v1/subscribers/{number}", json={"district": "장안구"}, headers=auth(api_keys)
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["recipient"]
    assert await count_rows(engine, number) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"district": "구" * 65}, "district"),
        ({"tags": ["x" * 65]}, "tags"),
        ({"tags": [f"t{i}" for i in range(33)]}, "tags"),
        ({"tags": "교통"}, "tags"),
        ({"district": "장안구", "status": "active"}, "status"),
        # text PostgreSQL cannot store (found by the OpenAPI fuzz): a 422, not a 500
        ({"district": "장안\x00구"}, "district"),
        ({"tags": ["ok", "bad\x00tag"]}, "tags"),
    ],
)
async def test_put_refuses_bad_fields_and_stores_nothing(
    client: httpx.AsyncClient,
    api_keys: dict[Role, str],
    engine: AsyncEngine,
    body: dict[str, object],
    field: str,
) -> None:
    number = new_number()
    response = await client.put(f"/v1/subscribers/{number}", json=body, headers=auth(api_keys))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert field in {e["field"] for e in response.json()["errors"]}
    assert await count_rows(engine, number) == 0


async def test_a_lone_surrogate_is_a_422_and_stores_nothing(
    client: httpx.AsyncClient, api_keys: dict[Role, str], engine: AsyncEngine
) -> None:
    number = new_number()
    response = await client.put(
        f"/v1/subscribers/{number}",
        content=b'{"tags": ["\\ud87a"]}',  # valid JSON, but no UTF-8 can hold it
        headers={**auth(api_keys), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert "tags" in {e["field"] for e in response.json()["errors"]}
    assert await count_rows(engine, number) == 0


async def test_opt_out_keeps_its_first_time_and_put_resubscribes(
    client: httpx.AsyncClient, api_keys: dict[Role, str]
) -> None:
    number = new_number()
    await client.put(f"/v1/subscribers/{number}", json={}, headers=auth(api_keys))

    first = await client.delete(f"/v1/subscribers/{number}", headers=auth(api_keys))
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "opted_out"
    assert first.json()["opted_out_at"] is not None
    again = await client.delete(f"/v1/subscribers/{number}", headers=auth(api_keys))
    assert again.json()["opted_out_at"] == first.json()["opted_out_at"]

    back = await client.put(
        f"/v1/subscribers/{number}", json={"district": "권선구"}, headers=auth(api_keys)
    )
    assert back.status_code == 200
    assert (back.json()["status"], back.json()["opted_out_at"]) == ("active", None)


async def test_unknown_subscriber_is_a_404_problem(
    client: httpx.AsyncClient, api_keys: dict[Role, str], engine: AsyncEngine
) -> None:
    number = new_number()
    for method in ("GET", "DELETE"):
        response = await client.request(method, f"/v1/subscribers/{number}", headers=auth(api_keys))
        assert response.status_code == 404, method
        assert response.headers["content-type"] == "application/problem+json"
        assert number in response.json()["detail"]
    assert await count_rows(engine, number) == 0


async def test_keys_and_roles_are_enforced(
    client: httpx.AsyncClient, api_keys: dict[Role, str], engine: AsyncEngine
) -> None:
    number = new_number()
    path = f"/v1/subscribers/{number}"
    assert (await client.put(path, json={})).status_code == 401
    assert (await client.put(path, json={}, headers={"X-API-Key": "allim_x_y"})).status_code == 401
    assert (await client.put(path, json={}, headers=auth(api_keys, "viewer"))).status_code == 403
    assert (await client.delete(path, headers=auth(api_keys, "viewer"))).status_code == 403
    assert (await client.get(path)).status_code == 401
    assert (await client.get("/v1/subscribers/counts")).status_code == 401
    assert await count_rows(engine, number) == 0


async def test_counts_by_district(client: httpx.AsyncClient, api_keys: dict[Role, str]) -> None:
    north, south = f"북구-{uuid.uuid4().hex[:8]}", f"남구-{uuid.uuid4().hex[:8]}"
    numbers = [new_number() for _ in range(5)]
    for number, district in zip(numbers, [north, north, north, south, south], strict=True):
        response = await client.put(
            f"/v1/subscribers/{number}", json={"district": district}, headers=auth(api_keys)
        )
        assert response.status_code == 201
    await client.delete(f"/v1/subscribers/{numbers[0]}", headers=auth(api_keys))

    before = (await client.get("/v1/subscribers/counts", headers=auth(api_keys, "viewer"))).json()
    by_district = {d["district"]: d for d in before["districts"]}
    assert by_district[north] == {"district": north, "active": 2, "opted_out": 1}
    assert by_district[south] == {"district": south, "active": 2, "opted_out": 0}
    assert before["active"] == sum(d["active"] for d in before["districts"])
    assert before["opted_out"] == sum(d["opted_out"] for d in before["districts"])
