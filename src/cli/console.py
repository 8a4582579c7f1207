"""`allim console`: the operator console on this machine's stack, until Ctrl-C.

It starts the sandbox, gateway, broadcaster and analytics as `allim demo` does (the gateway on
ALLIM_GATEWAY_PORT, so the console is at its usual address), gives the newest demo run's
operator and approver fresh passwords, prints the console's address and their sign-in, and
keeps the services running until Ctrl-C or until one of them stops.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from cli.admin import SubParsers
from cli.demo import simulation_flags, start_services
from cli.processes import ServiceGroup
from common.config import CommonSettings
from common.db import create_engine, session_factory
from common.models import User
from common.topics import ensure_topics
from gateway import audit, users
from gateway.config import load_settings

# the names `allim demo` gives its two people, a run's six hex digits after them
DEMO_PEOPLE = ("demo-operator-", "demo-approver-")


@dataclass(frozen=True)
class SignIn:
    """A person to sign in as, and the password just set."""

    name: str
    role: str
    password: str


async def demo_sign_ins(database_url: str) -> list[SignIn]:
    """Fresh passwords for the newest demo run's operator and approver (those still enabled;
    none before a demo has run), each unlocked and audited as `user.password`."""
    engine = create_engine(database_url, pool_size=1)
    made: list[SignIn] = []
    try:
        async with session_factory(engine)() as session, session.begin():
            for prefix in DEMO_PEOPLE:
                user = await session.scalar(
                    select(User)
                    .where(User.name.startswith(prefix), User.disabled_at.is_(None))
                    .order_by(User.created_at.desc(), User.id.desc())
                    .limit(1)
                    .with_for_update()
                )
                if user is None:
                    continue
                password = secrets.token_urlsafe(12)  # 16 characters, 96 random bits
                user.password_hash = users.hash_password(password)
                user.failed_signins = 0
                user.locked_until = None
                actor = audit.Actor(name="allim console")
                audit.record(session, actor, "user.password", detail={"name": user.name})
                made.append(SignIn(user.name, user.role, password))
    finally:
        await engine.dispose()
    return made


def sign_in_text(gateway: str, sign_ins: list[SignIn]) -> str:
    """What `allim console` prints once the services are up: where, and as whom."""
    lines = [f"Console: {gateway}/console/ (Ctrl-C stops the services)"]
    if sign_ins:
        lines.append("Sign in as (passwords set just now; the next `allim console` changes them):")
        lines += [f"  {s.name} ({s.role})  password: {s.password}" for s in sign_ins]
    else:
        lines.append(
            "No demo people yet: run `make demo` first, or make a person with "
            "`allim users create --name NAME --role operator` (same environment)."
        )
    return "\n".join(lines)


def _serve(group: ServiceGroup) -> int:
    """Wait until Ctrl-C (0) or until a service stops by itself (1, its log's end printed)."""
    try:
        while all(service.alive() for service in group.services):
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nStopping the services ...")
        return 0
    for service in group.services:
        if not service.alive():
            print(f"The {service.name} stopped; its log is {service.log_path}:\n{service.tail()}")
    return 1


def _console(args: argparse.Namespace) -> int:
    settings = CommonSettings()
    port = args.port or load_settings().gateway_port
    asyncio.run(ensure_topics(settings.kafka_bootstrap))
    group = ServiceGroup()
    with group.running():
        urls = start_services(group, args, Path(args.logs), gateway_port=port)
        sign_ins = asyncio.run(demo_sign_ins(settings.database_url))
        print(sign_in_text(urls["gateway"], sign_ins), flush=True)
        print(f"Services: sandbox {urls['sandbox']}, broadcaster, analytics (logs in {args.logs}/)")
        return _serve(group)


def register(subparsers: SubParsers) -> None:
    """Add `console`."""
    console = subparsers.add_parser(
        "console", help="run every service for the operator console until Ctrl-C"
    )
    console.add_argument("--port", type=int, help="the gateway's port (default ALLIM_GATEWAY_PORT)")
    simulation_flags(console)
    console.add_argument(
        "--logs",
        default=os.environ.get("ALLIM_DEMO_LOGS", ".local/dev/logs"),
        help="folder of the services' logs",
    )
    console.set_defaults(handler=_console)
