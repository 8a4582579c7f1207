"""The simulator's tap connection against real servers on the loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sandbox.taps import TapConnection, TapError


@pytest.fixture
async def raw_server() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server that answers each request with a cookie, then closes after the second."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            seen.append(head)
            served += 1
            close = served == 2
            writer.write(
                b"HTTP/1.1 302 Found\r\nLocation: /a/x\r\nSet-Cookie: r=abc; Path=/\r\n"
                b"Set-Cookie: other=1\r\nContent-Length: 5\r\n"
                + (b"Connection: close\r\n" if close else b"")
                + b"\r\nhello"
            )
            await writer.drain()
            if close:
                break
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}", seen


async def test_keeps_the_connection_and_reconnects_after_close(
    raw_server: tuple[str, list[bytes]],
) -> None:
    url, seen = raw_server
    connection = TapConnection(timeout=5)
    try:
        answers = [
            await connection.get(f"{url}/r/tok{i}", "r=abc" if i else None) for i in range(3)
        ]
    finally:
        await connection.close()
    assert [a.status for a in answers] == [302, 302, 302]
    assert answers[0].set_cookies == ["r=abc; Path=/", "other=1"]
    assert seen[0].startswith(b"GET /r/tok0 HTTP/1.1\r\n") and b"Cookie:" not in seen[0]
    assert b"\r\nCookie: r=abc\r\n" in seen[1]
    assert len(seen) == 3  # the third went over a new connection after the server closed


async def test_refused_and_malformed_links_raise_tap_error() -> None:
    connection = TapConnection(timeout=2)
    with pytest.raises(TapError, match="not an http"):
        await connection.get("ftp://127.0.0.1/r/x", None)
    with pytest.raises(TapError, match="failed"):
        # nothing listens on the discard port of the loopback
        await connection.get("http://127.0.0.1:9/r/x", None)
