"""What a broadcast costs the machine, read from /proc and from PostgreSQL itself.

CPU seconds of a process (user + system), of the children it reaped, and of the whole
PostgreSQL server (the postmaster, its live backends and workers, and those that exited);
the size on disk of the tables the audience and the sends grow (`SIZED_TABLES`) and their
`pg_*` figures; the connections a broadcast's processes hold. `scale.py` reports them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import asyncpg

from taps import tree_cpu_seconds

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MIB = 2**20
# the tables whose size the audience and the sends decide
SIZED_TABLES = ("subscribers", "batches", "shards")
TABLE_SIZES = """
SELECT c.relname AS name, pg_table_size(c.oid) AS table_bytes,
       pg_indexes_size(c.oid) AS index_bytes, pg_total_relation_size(c.oid) AS total_bytes
FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname = ANY($1::text[])
"""


def _ticks(pid: int, first: int) -> float:
    """Seconds of the two clock-tick fields of /proc/<pid>/stat from `first` on, counted
    after the command (state is [0]); 0 when the process is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[first]) + int(fields[first + 1])) / CLOCK_TICKS


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (utime + stime; 0 when it is gone)."""
    return _ticks(pid, 11)


def reaped_cpu_seconds(pid: int) -> float:
    """CPU seconds of the children `pid` has waited for (cutime + cstime; 0 when it is gone)."""
    return _ticks(pid, 13)


async def _value(dsn: str, query: str) -> Any:
    """The one value `query` reads, on a connection of its own."""
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval(query)
    finally:
        await connection.close()


async def postmaster_pid(dsn: str) -> int | None:
    """The PostgreSQL server's process id, read from its data directory (None when the server
    is not on this machine or the role may not read `data_directory`)."""
    directory = await _value(dsn, "SELECT setting FROM pg_settings WHERE name = 'data_directory'")
    return pid_in(Path(directory or "") / "postmaster.pid")


def pid_in(pid_file: Path) -> int | None:
    """The live process whose id is the first line of `pid_file`, or None."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def postgres_cpu_seconds(postmaster: int | None) -> float:
    """CPU seconds of the PostgreSQL server so far: the postmaster, its live backends and
    workers, and those that exited (0 when the server is not on this machine)."""
    if postmaster is None:
        return 0.0
    return tree_cpu_seconds(postmaster) + reaped_cpu_seconds(postmaster)


async def table_sizes(dsn: str) -> dict[str, dict[str, int]]:
    """Bytes on disk of each of `SIZED_TABLES`: table (with TOAST), indexes, total; and rows."""
    connection = await asyncpg.connect(dsn)
    try:
        # the sizes of the visible state: dead rows of earlier sends are not the audience's
        for name in SIZED_TABLES:
            await connection.execute(f"VACUUM {name}")
        sizes: dict[str, dict[str, int]] = {}
        for row in await connection.fetch(TABLE_SIZES, list(SIZED_TABLES)):
            rows = await connection.fetchval(f"SELECT count(*) FROM {row['name']}")
            sizes[row["name"]] = {
                "table": row["table_bytes"],
                "indexes": row["index_bytes"],
                "total": row["total_bytes"],
                "rows": int(rows),
            }
    finally:
        await connection.close()
    missing = set(SIZED_TABLES) - set(sizes)
    if missing:
        raise RuntimeError(f"Tables {', '.join(sorted(missing))} are not in the database.")
    return sizes


async def broadcaster_connections(dsn: str) -> int:
    """Connections to the benchmark's database other than this script's own two (`alerts`
    and this one): the planner's and the sender's pools, which keep what they opened for
    five minutes, so after a send this is what the send needed."""
    count = await _value(
        dsn, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    )
    return int(count) - 2


def size_figures(sizes: dict[str, dict[str, int]], recipients_sent: int) -> dict[str, float]:
    """`pg_*` figures: subscribers per million of them, batches and shards per million sent."""
    subscribers = sizes["subscribers"]
    figures: dict[str, float] = {
        "pg_subscribers_mb_per_1m": round(
            subscribers["total"] / MIB / subscribers["rows"] * 1e6, 1
        ),
        "pg_subscribers_table_mb": round(subscribers["table"] / MIB, 1),
        "pg_subscribers_indexes_mb": round(subscribers["indexes"] / MIB, 1),
        "pg_subscribers_rows": subscribers["rows"],
        "pg_recipients_sent": recipients_sent,
    }
    for name in ("batches", "shards"):
        figures[f"pg_{name}_mb"] = round(sizes[name]["total"] / MIB, 2)
        figures[f"pg_{name}_rows"] = sizes[name]["rows"]
        figures[f"pg_{name}_mb_per_1m_sent"] = round(
            sizes[name]["total"] / MIB / recipients_sent * 1e6, 3
        )
    return figures
