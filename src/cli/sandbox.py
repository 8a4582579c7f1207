"""`allim sandbox`: the sandbox provider and recipient simulator, in the foreground."""

from __future__ import annotations

import argparse
import logging
import signal
from types import FrameType
from typing import Any

import uvicorn

from cli.flags import overridden
from common.logs import configure_logging
from sandbox.config import load_settings
from sandbox.main import create_app

SubParsers = Any  # argparse's private _SubParsersAction

logger = logging.getLogger(__name__)


def _stopped(signum: int, frame: FrameType | None) -> None:
    logger.info("sandbox stopped by signal %s", signum)


def _run(args: argparse.Namespace) -> int:
    settings = load_settings()
    settings = overridden(settings, sandbox_host=args.host, sandbox_port=args.port)
    configure_logging(settings.log_level, settings.log_json)
    logger.info(
        "sandbox serving appkey %s on %s:%s",
        settings.sandbox_appkey,
        settings.sandbox_host,
        settings.sandbox_port,
    )
    # uvicorn stops gracefully on SIGTERM (in-flight requests finish first) and then raises
    # the signal again with the handler it found: let that one end the process with status 0
    signal.signal(signal.SIGTERM, _stopped)
    uvicorn.run(
        create_app(settings),
        host=settings.sandbox_host,
        port=settings.sandbox_port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=10,
    )
    return 0


def register(subparsers: SubParsers) -> None:
    """Add `sandbox`."""
    sandbox = subparsers.add_parser(
        "sandbox", help="run the sandbox KakaoTalk dealer and recipient simulator"
    )
    sandbox.add_argument("--host", help="listen address (default ALLIM_SANDBOX_HOST)")
    sandbox.add_argument("--port", type=int, help="listen port (default ALLIM_SANDBOX_PORT)")
    sandbox.set_defaults(handler=_run)
