"""Tracked links (`/r/{token}`) and the public landing page (`/a/{alert_id}`).

A tap verifies the token, sets the reader cookie, fires a `dev.allim.engagement.tap`
CloudEvent at the `engagement` topic and redirects to the landing page. It touches
neither the database nor Kafka's acknowledgement: the send is fired, and its outcome is
counted in `allim_gateway_taps_total{outcome}` when the broker answers:

- `recorded`: the broker has the event; `failed`: the send failed;
- `dropped`: the producer is not connected yet, or too many sends are in flight;
- `invalid`: a forged, truncated or expired token (404, nothing recorded);
- `preview`: a link-preview robot fetched the link (redirected, nothing recorded).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
import uuid
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from common.events import LINK_TAPPED, CloudEvent
from common.messages import TapData
from common.problems import Problem
from common.tokens import TokenError
from common.topics import ENGAGEMENT
from gateway.config import GatewaySettings
from gateway.deps import get_state
from gateway.landing import PageCache, load_page, render_alert, render_missing
from gateway.metrics import GatewayMetrics
from gateway.state import KafkaLink

logger = logging.getLogger(__name__)

SOURCE = "/allim/gateway"
READER_COOKIE_MAX_AGE = 400 * 24 * 3600  # the longest lifetime browsers grant a cookie
_READER = re.compile(r"[A-Za-z0-9_-]{16,64}")  # fits alert_readers.reader_id
# Chat apps fetch a pasted link to draw its preview; that fetch is nobody reading.
_PREVIEW_AGENTS = re.compile(
    r"kakaotalk-scrap|facebookexternalhit|slackbot|twitterbot|telegrambot|discordbot|"
    r"whatsapp|linkedinbot|skypeuripreview|yeti|bingbot|googlebot",
    re.IGNORECASE,
)
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


class TapPublisher:
    """Fires tap events at Kafka without waiting for them; at most `max_pending` in flight."""

    def __init__(self, metrics: GatewayMetrics, max_pending: int) -> None:
        self._metrics = metrics
        self._max_pending = max_pending
        self._pending: set[asyncio.Task[None]] = set()

    def publish(self, kafka: KafkaLink, key: str, event: CloudEvent) -> bool:
        """Start sending `event`; False (counted as dropped) when it cannot be sent now."""
        if not kafka.ready.is_set() or len(self._pending) >= self._max_pending:
            self._metrics.taps.labels("dropped").inc()
            return False
        task = asyncio.create_task(self._send(kafka.producer, key, event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return True

    async def _send(self, producer: AIOKafkaProducer, key: str, event: CloudEvent) -> None:
        try:
            delivered = await producer.send(
                ENGAGEMENT, value=event.value(), key=key.encode(), headers=event.headers()
            )
            await delivered
        except Exception:  # nobody awaits this task: every failure ends here, counted
            self._metrics.taps.labels("failed").inc()
            logger.warning("tap event %s was not published", event.id, exc_info=True)
        else:
            self._metrics.taps.labels("recorded").inc()


def create_router(settings: GatewaySettings, metrics: GatewayMetrics) -> APIRouter:
    """The tracking routes of one app, with that app's tap publisher and page cache."""
    router = APIRouter(tags=["tracking"])
    publisher = TapPublisher(metrics, settings.gateway_tap_max_pending)
    pages = PageCache(settings.gateway_landing_cache_size, settings.gateway_landing_cache_seconds)
    base_url = settings.public_base_url.rstrip("/")
    cookie = settings.gateway_reader_cookie
    secure_cookie = base_url.startswith("https://")

    @router.get(
        "/r/{token}",
        summary="Follow a tracked link",
        status_code=302,
        response_class=RedirectResponse,
        responses={302: {"description": "To the landing page"}, 404: {"description": "Bad link"}},
    )
    async def tap(token: str, request: Request) -> Response:
        """Record a read of the token's alert and redirect to its landing page."""
        # called, not injected: FastAPI would run the plain function in a thread per tap
        state = get_state(request)
        try:
            link = state.signer.verify(token, time.time())
        except TokenError as exc:
            metrics.taps.labels("invalid").inc()
            raise Problem(404, "Not Found", "This link is not valid or has expired.") from exc
        reader = request.cookies.get(cookie, "")
        new_reader = not _READER.fullmatch(reader)
        if new_reader:
            reader = secrets.token_hex(16)
        if _PREVIEW_AGENTS.search(request.headers.get("user-agent", "")):
            metrics.taps.labels("preview").inc()
        else:
            data = TapData(
                alert_id=link.alert_id,
                subscriber_id=link.subscriber_id,
                reader_id=reader,
                tapped_at=datetime.now(UTC),
            )
            event = CloudEvent(type=LINK_TAPPED, source=SOURCE, data=data.model_dump(mode="json"))
            publisher.publish(state.kafka, str(link.alert_id), event)
        response = RedirectResponse(f"/a/{link.alert_id}?t={token}", status_code=302)
        response.headers["Cache-Control"] = "no-store"
        if new_reader:
            response.set_cookie(
                cookie,
                reader,
                max_age=READER_COOKIE_MAX_AGE,
                httponly=True,
                samesite="lax",
                secure=secure_cookie,
            )
        return response

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
