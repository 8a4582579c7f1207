"""Connection-level faults: resetting the TCP connection a request came on.

ASGI gives an app no handle on its connection, so `SandboxApp` (the FastAPI app) keeps
uvicorn's transport in the request scope, found through uvicorn's `send` callable.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any, Protocol

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

TRANSPORT_KEY = "sandbox.transport"
# SO_LINGER on, timeout 0: close() sends RST instead of FIN
_LINGER_ABORT = struct.pack("ii", 1, 0)


class Transport(Protocol):
    """The part of an asyncio (or uvloop) transport a reset needs."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The socket, among others."""
        ...

    def abort(self) -> None:
        """Close at once, dropping buffered data."""
        ...


class SandboxApp(FastAPI):
    """A FastAPI app that keeps the server's transport in the scope of each HTTP request."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            # uvloop's transports are not asyncio.Transport subclasses: look for the methods
            if callable(getattr(transport, "abort", None)):
                scope[TRANSPORT_KEY] = transport
        await super().__call__(scope, receive, send)


async def reset_connection(scope: dict[str, Any] | Scope) -> None:
    """Reset the TCP connection of the request in `scope` (RST, no response).

    Without a transport (an in-process ASGI client) this raises `ConnectionResetError`,
    which such clients see as the failure of the request.
    """
    transport: Transport | None = scope.get(TRANSPORT_KEY)
    if transport is None:
        raise ConnectionResetError("The sandbox reset the connection.")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
    transport.abort()
    # let the server see the connection lost, so it drops the response instead of writing it
    for _ in range(3):
        await asyncio.sleep(0)
