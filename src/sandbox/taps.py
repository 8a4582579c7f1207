"""The simulator's HTTP client for taps: a GET on one keep-alive HTTP/1.1 connection.

A tap is the smallest request there is, and the simulator makes hundreds of thousands of
them on the same machine as the gateway it measures; a general client (httpx) spends several
times the gateway's own CPU per tap. This one writes the request line and reads the status,
the headers and a Content-Length body, nothing else, and reconnects when the server closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import urlsplit

USER_AGENT = "allim-sandbox-reader/1.0"
_MAX_HEADER_BYTES = 64 * 1024


class TapError(Exception):
    """A tap got no complete HTTP answer (refused, reset, timed out, malformed)."""


@dataclass(frozen=True)
class TapAnswer:
    """What a tap's response said that a person's browser keeps."""

    status: int
    set_cookies: list[str]


class TapConnection:
    """One keep-alive connection per origin; not for concurrent use (one worker owns it)."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._origin: tuple[str, int] | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, url: str, cookie: str | None) -> TapAnswer:
        """GET `url` sending `cookie`; `TapError` when no complete answer came."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise TapError(f"Tap link '{url}' is not an http:// URL.")
        origin = (parts.hostname, parts.port or 80)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [
            f"GET {target or '/'} HTTP/1.1",
            f"Host: {parts.netloc}",
            f"User-Agent: {USER_AGENT}",
        ]
        if cookie:
            lines.append(f"Cookie: {cookie}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            async with asyncio.timeout(self._timeout):
                return await self._exchange(origin, request)
        except (
            OSError,
            TimeoutError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
        ) as exc:
            await self.close()
            raise TapError(f"Tap on '{url}' failed: {exc!r}") from exc

    async def _exchange(self, origin: tuple[str, int], request: bytes) -> TapAnswer:
        if self._writer is None or self._origin != origin or self._writer.is_closing():
            await self.close()
            self._reader, self._writer = await asyncio.open_connection(*origin)
            self._origin = origin
        reader, writer = self._reader, self._writer
        assert reader is not None
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_HEADER_BYTES:
            raise ValueError("response headers too large")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        version, _, rest = status_line.partition(" ")
        if not version.startswith("HTTP/1."):
            raise ValueError(f"not an HTTP/1 response: {status_line!r}")
        status = int(rest[:3])
        length = 0
        close = version == "HTTP/1.0"
        cookies: list[str] = []
        for line in header_lines:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "set-cookie":
                cookies.append(value.strip())
            elif name == "connection" and value.strip().lower() == "close":
                close = True
            elif name == "transfer-encoding":
                raise ValueError("chunked responses are not expected from a tap")
        if length:
            await reader.readexactly(length)
        if close:
            await self.close()
        return TapAnswer(status, cookies)

    async def close(self) -> None:
        """Close the connection, if any."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
