"""The public landing page of an alert (`/a/{alert_id}`), where every tap ends.

The tap itself (`/r/{token}`) is answered ahead of FastAPI, by `gateway.taps`.
"""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from common.tokens import TokenError
from gateway.config import GatewaySettings
from gateway.deps import get_state
from gateway.landing import PageCache, load_page, render_alert, render_missing

_PAGE_HEADERS = {
    "Cache-Control": "private, max-age=60",
    # the share link holds the token: keep it out of the Referer sent to button links
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}


def create_router(settings: GatewaySettings) -> APIRouter:
    """The landing route of one app, with that app's page cache."""
    router = APIRouter(tags=["tracking"])
    pages = PageCache(settings.gateway_landing_cache_size, settings.gateway_landing_cache_seconds)
    base_url = settings.public_base_url.rstrip("/")

    @router.get(
        "/a/{alert_id}",
        summary="The public page of an alert",
        response_class=HTMLResponse,
        responses={404: {"description": "No such alert", "content": {"text/html": {}}}},
    )
    async def landing(alert_id: str, request: Request, t: str | None = None) -> HTMLResponse:
        """The alert as a web page, with a share link that is the tracked link it came from."""
        state = get_state(request)
        try:
            key = uuid.UUID(alert_id)
        except ValueError:
            return HTMLResponse(render_missing(), status_code=404, headers=_PAGE_HEADERS)
        page = await pages.get(key, lambda found: load_page(state.sessions, found))
        if page is None:
            return HTMLResponse(render_missing(), status_code=404, headers=_PAGE_HEADERS)
        share_url = f"{base_url}/a/{key}"
        if t is not None:
            try:
                if state.signer.verify(t, time.time()).alert_id == key:
                    share_url = f"{base_url}/r/{t}"
            except TokenError:
                pass  # an edited share parameter: fall back to the untracked page link
        return HTMLResponse(render_alert(page, share_url), headers=_PAGE_HEADERS)

    return router
