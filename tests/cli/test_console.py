"""`allim console`'s pieces: the demo people's fresh passwords, what it prints, its flags."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from cli.console import SignIn, demo_sign_ins, sign_in_text
from cli.demo import demo_people
from cli.main import build_parser
from common.db import session_factory
from common.models import AuditEntry, User
from gateway import users


async def _hash_of(engine: AsyncEngine, name: str) -> str | None:
    async with session_factory(engine)() as session:
        user = await session.scalar(select(User).where(User.name == name))
        assert user is not None
        return user.password_hash


async def test_the_newest_demo_people_get_passwords_that_sign_in(
    database_url: str, engine: AsyncEngine
) -> None:
    await demo_people(database_url)  # an earlier run's, left without passwords
    people = await demo_people(database_url)

    first = await demo_sign_ins(database_url)

    assert [(s.name, s.role) for s in first] == [
        (people.operator, "operator"),
        (people.approver, "approver"),
    ]
    for sign_in in first:
        assert len(sign_in.password) >= users.MIN_PASSWORD
        assert users.password_matches(await _hash_of(engine, sign_in.name), sign_in.password)
    # each run of the console sets new ones: the old passwords stop working
    second = await demo_sign_ins(database_url)
    assert [s.name for s in second] == [s.name for s in first]
    for old, new in zip(first, second, strict=True):
        assert old.password != new.password
        stored = await _hash_of(engine, new.name)
        assert users.password_matches(stored, new.password)
        assert not users.password_matches(stored, old.password)
    async with session_factory(engine)() as session:
        audited = (
            await session.scalars(
                select(AuditEntry.actor).where(
                    AuditEntry.action == "user.password",
                    AuditEntry.detail["name"].astext == people.operator,
                )
            )
        ).all()
    assert audited == ["allim console", "allim console"]


def test_the_text_gives_the_address_and_each_sign_in() -> None:
    text = sign_in_text(
        "http://127.0.0.1:8000",
        [SignIn("demo-operator-abc123", "operator", "pw-one-0123456789")],
    )
    assert "http://127.0.0.1:8000/console/" in text
    assert "demo-operator-abc123 (operator)  password: pw-one-0123456789" in text
    assert "make demo" in sign_in_text("http://127.0.0.1:8000", [])


def test_the_command_takes_the_demo_sandbox_flags_and_a_port() -> None:
    args = build_parser().parse_args(["console", "--port", "8123", "--profile", "viral"])
    assert (args.port, args.profile, args.time_scale) == (8123, "viral", 3600.0)
    assert args.handler.__module__ == "cli.console"
