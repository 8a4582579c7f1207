"""`GET /r/{token}`: a tap on a tracked link, answered ahead of FastAPI's routing.

Taps are the busiest route allim has (a viral notice is read by half a million people in
minutes), and the cheapest one to answer: verify the token, set the reader cookie, queue a
`dev.allim.engagement.tap` CloudEvent for the `engagement` topic (`gateway.tap_publisher`)
and redirect to the landing page. Through FastAPI, route matching, dependency solving and
the middleware cost more than all of that, so `TapRoute` is plain ASGI middleware, the
outermost one: it answers `/r/{token}` itself and hands every other request to the app.
It counts its requests and latency under the route `/r/{token}` as `RequestMetrics` does
for the others, and taps by outcome in `allim_gateway_taps_total{outcome}`:

- `recorded`, `failed`, `dropped`: the event's fate (see `gateway.tap_publisher`);
- `invalid`: a forged, truncated or expired token (404, nothing recorded);
- `preview`: a link-preview robot fetched the link (redirected, nothing recorded).

A tap touches neither the database nor Kafka's acknowledgement. OpenAPI documents the route
by `OPERATION`, since FastAPI does not see it.
"""

from __future__ import annotations

import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from common.events import CONTENT_TYPE, LINK_TAPPED, SPEC_VERSION, time_ordered_id
from common.problems import problem_response
from common.tokens import TokenError
from gateway.config import GatewaySettings
from gateway.metrics import GatewayMetrics
from gateway.state import GatewayState
from gateway.tap_publisher import TapPublisher

SOURCE = "/allim/gateway"
ROUTE = "/r/{token}"
PREFIX = "/r/"
READER_COOKIE_MAX_AGE = 400 * 24 * 3600  # the longest lifetime browsers grant a cookie
_READER = re.compile(rb"[A-Za-z0-9_-]{16,64}")  # fits alert_readers.reader_id
# Chat apps fetch a pasted link to draw its preview; that fetch is nobody reading.
_PREVIEW_AGENTS = re.compile(
    r"kakaotalk-scrap|facebookexternalhit|slackbot|twitterbot|telegrambot|discordbot|"
    r"whatsapp|linkedinbot|skypeuripreview|yeti|bingbot|googlebot",
    re.IGNORECASE,
)
# the CloudEvent attributes every tap shares (binary content mode, as common.events has them)
_SPEC_VERSION = SPEC_VERSION.encode()
_SOURCE = SOURCE.encode()
_TYPE = LINK_TAPPED.encode()
_CONTENT_TYPE = CONTENT_TYPE.encode()
_BAD_LINK = "This link is not valid or has expired."

OPERATION: dict[str, Any] = {
    "get": {
        "tags": ["tracking"],
        "summary": "Follow a tracked link",
        "description": "Record a read of the token's alert and redirect to its landing page "
        "(a new reader gets the reader cookie).",
        "operationId": "tap_r__token__get",
        "parameters": [
            {
                "name": "token",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "title": "Token"},
            }
        ],
        "responses": {
            "302": {"description": "To the landing page"},
            "404": {
                "description": "Bad link",
                "content": {
                    "application/problem+json": {
                        "schema": {"$ref": "#/components/schemas/ProblemDetails"}
                    }
                },
            },
        },
    }
}


class TapRoute:
    """ASGI middleware that answers `GET /r/{token}` and passes everything else on."""

    def __init__(
        self,
        app: ASGIApp,
        settings: GatewaySettings,
        metrics: GatewayMetrics,
        publisher: TapPublisher,
    ) -> None:
        self.app = app
        self._publisher = publisher
        self._cookie = settings.gateway_reader_cookie.encode()
        secure = "; Secure" if settings.public_base_url.startswith("https://") else ""
        # what Starlette's set_cookie writes for these attributes, made once
        self._cookie_attributes = (
            f"; HttpOnly; Max-Age={READER_COOKIE_MAX_AGE}; Path=/; SameSite=lax{secure}".encode()
        )
        self._taps_invalid = metrics.taps.labels("invalid")
        self._taps_preview = metrics.taps.labels("preview")
        self._answered = {
            status: metrics.requests.labels("GET", ROUTE, str(status)) for status in (302, 404)
        }
        self._latency = metrics.latency.labels("GET", ROUTE)
        self._metrics = metrics
        self._bad_link = problem_response(404, "Not Found", _BAD_LINK)
        self._not_allowed = problem_response(
            405, "Method Not Allowed", "Method Not Allowed", headers={"Allow": "GET"}
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        token = path[len(PREFIX) :]
        if not token or "/" in token:
            await self.app(scope, receive, send)  # not this route: the app's 404
            return
        started = time.perf_counter()
        method: str = scope["method"]
        if method != "GET":
            self._metrics.latency.labels(method, ROUTE).observe(time.perf_counter() - started)
            self._metrics.requests.labels(method, ROUTE, "405").inc()
            await self._not_allowed(scope, receive, send)
            return
        state: GatewayState = scope["app"].state.gateway
        now = time.time()
        try:
            link = state.signer.verify(token, now)
        except TokenError:
            self._taps_invalid.inc()
            self._latency.observe(time.perf_counter() - started)
            self._answered[404].inc()
            await self._bad_link(scope, receive, send)
            return
        reader = agent = b""
        for name, value in scope["headers"]:
            if name == b"cookie":
                reader = _cookie_value(value, self._cookie) or reader
            elif name == b"user-agent":
                agent = value
        new_reader = not _READER.fullmatch(reader)
        reader_id = secrets.token_hex(16) if new_reader else reader.decode()
        alert_id = str(link.alert_id)
        if agent and _PREVIEW_AGENTS.search(agent.decode("latin-1")):
            self._taps_preview.inc()
        else:
            tapped = datetime.fromtimestamp(now, UTC).isoformat()
            data = {
                "alert_id": alert_id,
                "subscriber_id": link.subscriber_id,
                "reader_id": reader_id,
                "tapped_at": tapped[:-6] + "Z",  # TapData's spelling of UTC
            }
            headers = [
                ("ce_specversion", _SPEC_VERSION),
                ("ce_id", time_ordered_id().encode()),
                ("ce_source", _SOURCE),
                ("ce_type", _TYPE),
                ("ce_time", tapped.encode()),
                ("content-type", _CONTENT_TYPE),
            ]
            self._publisher.publish(state.kafka, alert_id.encode(), orjson.dumps(data), headers)
        answer = [
            (b"location", f"/a/{alert_id}?t={token}".encode()),
            (b"content-length", b"0"),
            (b"cache-control", b"no-store"),
        ]
        if new_reader:
            cookie = self._cookie + b"=" + reader_id.encode() + self._cookie_attributes
            answer.append((b"set-cookie", cookie))
        self._latency.observe(time.perf_counter() - started)
        self._answered[302].inc()
        await send({"type": "http.response.start", "status": 302, "headers": answer})
        await send({"type": "http.response.body", "body": b""})


def _cookie_value(header: bytes, name: bytes) -> bytes:
    """The value of cookie `name` in a `Cookie` header, b"" when it is absent."""
    for pair in header.split(b";"):
        key, _, value = pair.strip().partition(b"=")
        if key == name:
            return value.strip().strip(b'"')
    return b""
