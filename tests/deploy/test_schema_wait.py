"""The `wait-for-schema` init container of deploy/kubernetes holds a service back until the
migration Job has brought the database to the head of the image's migrations."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from tests.deploy import kustomize

from cli.databases import migrations_dir, run_migrations, scratch_database

BASE = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "base"
# generous: bounds how long a broken script takes to fail, proves nothing
WITHIN = 60.0


@pytest.fixture(scope="module")
def wait_for_schema() -> list[str]:
    """The init container's command, as the base renders it."""
    commands = {
        tuple(container["command"])
        for doc in kustomize.documents(kustomize.build(BASE))
        if doc["kind"] == "Deployment"
        for container in doc["spec"]["template"]["spec"]["initContainers"]
        if container["name"] == "wait-for-schema"
    }
    (command,) = commands
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


async def started(command: list[str], database_url: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLIM_")}
    env |= {"ALLIM_DATABASE_URL": database_url, "ALLIM_MIGRATIONS_DIR": str(migrations_dir())}
    return await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )


async def line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    return (await asyncio.wait_for(process.stdout.readline(), WITHIN)).decode().rstrip()


async def stopped(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
        await process.wait()


async def test_waits_on_an_empty_database_until_it_is_migrated(
    wait_for_schema: list[str], database_url: str
) -> None:
    head = ScriptDirectory(str(migrations_dir())).get_current_head()
    async with scratch_database(database_url, "allim_wait", migrate=False) as url:
        process = await started(wait_for_schema, url)
        try:
            assert await line(process) == f"waiting for the schema: at None, want {head}"
            assert process.returncode is None
            await asyncio.to_thread(run_migrations, url)
            seen = [await line(process)]
            while seen[-1].startswith("waiting"):
                seen.append(await line(process))
            assert seen[-1] == f"schema at {head}"
            assert await asyncio.wait_for(process.wait(), WITHIN) == 0
        finally:
            await stopped(process)


async def test_waits_while_the_database_is_unreachable(wait_for_schema: list[str]) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        process = await started(
            wait_for_schema, f"postgresql+asyncpg://allim@127.0.0.1:{port}/allim"
        )
        try:
            first = await line(process)
            assert first.startswith("waiting for the schema: at unknown (")
            assert process.returncode is None
        finally:
            await stopped(process)
