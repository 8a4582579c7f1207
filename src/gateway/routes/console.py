"""`/console`: the operator console, a page and its scripts served from this package.

The console is one HTML page (`gateway/console/index.html`) and the ES modules and style
sheet beside it; everything it shows it reads from the gateway's own API, signed in with a
session (`/v1/session`). It needs nothing from another origin, so it works on a closed
network, and its pages carry a Content-Security-Policy that allows only the gateway's own
scripts and styles (no inline script) and no framing.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from common.problems import Problem

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _assets() -> dict[str, Path]:
    """The files a browser may ask for, by name: only these are ever read."""
    return {
        path.name: path
        for path in sorted(CONSOLE_DIR.iterdir())
        if path.is_file() and path.suffix in MEDIA_TYPES
    }


def create_router() -> APIRouter:
    """The console's routes; the asset list is read once, so a request names a known file."""
    assets = _assets()
    page = CONSOLE_DIR / "index.html"
    router = APIRouter(prefix="/console", include_in_schema=False)

    @router.get("")
    async def console_root() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=308)

    @router.get("/")
    async def console_page() -> FileResponse:
        """The console's one page; the script beside it draws each screen."""
        headers = SECURITY_HEADERS | {"Cache-Control": "no-cache"}
        return FileResponse(page, media_type="text/html; charset=utf-8", headers=headers)

    @router.get("/assets/{name}")
    async def console_asset(name: str) -> FileResponse:
        """A script, style sheet or picture of the console."""
        path = assets.get(name)
        if path is None:
            raise Problem(404, "Not Found", f"The console has no file '{name}'.")
        headers = SECURITY_HEADERS | {"Cache-Control": "no-cache"}
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=headers)

    return router
