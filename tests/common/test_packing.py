"""A batch's packed record: what the settlement writes is what PostgreSQL and Python read."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from common.packing import codes, from_codes, from_ids, ids

IDS = [5, 6, 7, 8, 20, 21, 2**40, 9, 3]  # runs, a jump, an id out of order
CODES = [1000, 3018, 1000, -8012, 1000, 5000, 1000, 1000, 3005]


def test_python_reads_back_what_it_packed() -> None:
    assert from_ids(ids(IDS)) == IDS
    assert from_codes(codes(CODES), len(CODES)) == CODES
    assert from_ids(ids([])) == []


def test_a_range_batch_delivered_to_everyone_packs_to_a_few_bytes() -> None:
    assert len(ids(range(1_000, 2_000))) == 16
    assert codes([1000] * 1000) == b""


@pytest.mark.integration
async def test_postgresql_unpacks_them_as_arrays(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT allim_ids(:ids) AS ids, allim_id_count(:ids) AS n,"
                    " allim_codes(:codes, allim_id_count(:ids)) AS codes,"
                    " allim_ids(:none) AS none, allim_codes(:none, 3) AS usual"
                ),
                {"ids": ids(IDS), "codes": codes(CODES), "none": b""},
            )
        ).one()
    assert (list(row.ids), row.n, list(row.codes)) == (IDS, len(IDS), CODES)
    assert (list(row.none), list(row.usual)) == ([], [1000, 1000, 1000])
