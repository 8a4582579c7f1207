"""`allim gateway` (the HTTP gateway in the foreground) and `allim keys` (operator API keys)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from datetime import UTC, datetime
from types import FrameType
from typing import Any, cast

import uvicorn
from sqlalchemy import select, update

from cli.flags import overridden
from common.config import CommonSettings
from common.db import create_engine, session_factory
from common.logs import configure_logging
from common.models import ApiKey
from gateway import audit
from gateway.auth import ROLES, Role, create_key
from gateway.config import load_settings
from gateway.main import create_app

SubParsers = Any  # argparse's private _SubParsersAction

logger = logging.getLogger(__name__)


def _stopped(signum: int, frame: FrameType | None) -> None:
    logger.info("gateway stopped by signal %s", signum)


def _serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    settings = overridden(
        settings, gateway_host=args.host, gateway_port=args.port, gateway_workers=args.workers
    )
    configure_logging(settings.log_level, settings.log_json)
    logger.info("gateway listening on %s:%s", settings.gateway_host, settings.gateway_port)
    # uvicorn finishes in-flight requests on SIGTERM, runs the lifespan's shutdown (relay
    # and producer stopped), then re-raises the signal with this handler: exit status 0
    signal.signal(signal.SIGTERM, _stopped)
    options: dict[str, Any] = {
        "host": settings.gateway_host,
        "port": settings.gateway_port,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        "log_config": None,
        "timeout_graceful_shutdown": 10,
    }
    if settings.gateway_workers > 1:
        # each worker process builds its own app (and relay) from the environment
        uvicorn.run(
            "gateway.main:app_from_environment",
            factory=True,
            workers=settings.gateway_workers,
            **options,
        )
    else:
        uvicorn.run(create_app(settings), **options)
    return 0


async def _create_key(database_url: str, name: str, role: Role) -> str:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_factory(engine)() as session, session.begin():
            key = await create_key(session, name, role)
            detail = {"name": name, "role": role, "prefix": key.split("_")[1]}
            audit.record(session, audit.Actor.shell(), "key.create", detail=detail)
            return key
    finally:
        await engine.dispose()


async def _list_keys(database_url: str) -> list[ApiKey]:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_factory(engine)() as session:
            return list((await session.scalars(select(ApiKey).order_by(ApiKey.id))).all())
    finally:
        await engine.dispose()


async def _revoke_key(database_url: str, prefix: str) -> bool:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with session_factory(engine)() as session, session.begin():
            result = await session.execute(
                update(ApiKey)
                .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
                .returning(ApiKey.id)
            )
            revoked = result.scalar_one_or_none()
            if revoked is None:
                return False
            detail = {"prefix": prefix, "revoked_key_id": revoked}
            audit.record(session, audit.Actor.shell(), "key.revoke", detail=detail)
            return True
    finally:
        await engine.dispose()


def _keys_create(args: argparse.Namespace) -> int:
    settings = CommonSettings()
    name = args.name.strip()
    if not name or len(name) > 100:
        raise SystemExit("--name must be 1 to 100 characters.")
    key = asyncio.run(_create_key(settings.database_url, name, cast(Role, args.role)))
    # the plain key exists only here: it is stored as a hash
    print(key)
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    settings = CommonSettings()
    for key in asyncio.run(_list_keys(settings.database_url)):
        revoked = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        print(f"{key.prefix}\t{key.role}\t{revoked}\t{key.name}")
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    settings = CommonSettings()
    if not asyncio.run(_revoke_key(settings.database_url, args.prefix)):
        print(f"No active key has the prefix '{args.prefix}'.")
        return 1
    print(f"Key {args.prefix} revoked.")
    return 0


def register(subparsers: SubParsers) -> None:
    """Add `gateway` and `keys create|list|revoke`."""
    gateway = subparsers.add_parser("gateway", help="run the HTTP gateway")
    gateway.add_argument("--host", help="listen address (default ALLIM_GATEWAY_HOST)")
    gateway.add_argument("--port", type=int, help="listen port (default ALLIM_GATEWAY_PORT)")
    gateway.add_argument(
        "--workers", type=int, help="worker processes (default ALLIM_GATEWAY_WORKERS)"
    )
    gateway.set_defaults(handler=_serve)

    keys = subparsers.add_parser("keys", help="create, list and revoke operator API keys")
    keys.set_defaults(handler=lambda args: keys.print_help() or 2)
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a key and print it (shown only once)")
    create.add_argument("--role", required=True, choices=ROLES, help="what the key may do")
    create.add_argument("--name", required=True, help="who or what uses the key")
    create.set_defaults(handler=_keys_create)
    listing = actions.add_parser("list", help="list keys (prefix, role, state, name)")
    listing.set_defaults(handler=_keys_list)
    revoke = actions.add_parser("revoke", help="revoke a key by its prefix")
    revoke.add_argument("prefix", help="the part after 'allim_' in the key")
    revoke.set_defaults(handler=_keys_revoke)
