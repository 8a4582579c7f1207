"""`allim gateway`: the HTTP gateway in the foreground."""

from __future__ import annotations

import argparse
import logging
import signal
from types import FrameType
from typing import Any

import uvicorn

from cli.flags import overridden
from common.logs import configure_logging
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


def register(subparsers: SubParsers) -> None:
    """Add `gateway`."""
    gateway = subparsers.add_parser("gateway", help="run the HTTP gateway")
    gateway.add_argument("--host", help="listen address (default ALLIM_GATEWAY_HOST)")
    gateway.add_argument("--port", type=int, help="listen port (default ALLIM_GATEWAY_PORT)")
    gateway.add_argument(
        "--workers", type=int, help="worker processes (default ALLIM_GATEWAY_WORKERS)"
    )
    gateway.set_defaults(handler=_serve)
