"""The public landing page of an alert (`/a/{alert_id}`), and the cache that serves it.

Every tap on a tracked link ends on this page, so a burst of taps must not become a
burst of queries: alert content is kept in a bounded LRU with a time to live, and
concurrent misses for one alert share a single load.
"""

from __future__ import annotations

import asyncio
import html
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib import resources
from string import Template
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.models import Alert

KST = timezone(timedelta(hours=9), "KST")
CATEGORY_LABELS = {"emergency": "긴급", "public": "안내", "promotional": "소식"}
# how long an unknown alert id stays known as unknown
MISSING_TTL_SECONDS = 5.0


def _template(name: str) -> Template:
    return Template(resources.files("gateway").joinpath("templates", name).read_text("utf-8"))


PAGE = _template("page.html")
ALERT = _template("alert.html")


@dataclass(frozen=True)
class AlertPage:
    """What the landing page shows of an alert."""

    alert_id: uuid.UUID
    title: str
    body: str
    category: str
    buttons: tuple[tuple[str, str], ...]  # (name, link)
    created_at: datetime


async def load_page(
    sessions: async_sessionmaker[AsyncSession], alert_id: uuid.UUID
) -> AlertPage | None:
    """The page content of an alert from the database, None when there is no such alert."""
    async with sessions() as session:
        row = (
            await session.execute(
                select(
                    Alert.title, Alert.body, Alert.category, Alert.buttons, Alert.created_at
                ).where(Alert.id == alert_id)
            )
        ).one_or_none()
    if row is None:
        return None
    title, body, category, buttons, created_at = row
    return AlertPage(
        alert_id=alert_id,
        title=title,
        body=body,
        category=category,
        buttons=tuple((str(b.get("name", "")), str(b.get("link", ""))) for b in buttons),
        created_at=created_at,
    )


@dataclass
class _Entry:
    page: AlertPage | None
    expires: float


class PageCache:
    """A bounded LRU of alert pages with a time to live; one load per alert at a time."""

    def __init__(
        self, size: int, ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._size = size
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[uuid.UUID, _Entry] = OrderedDict()
        self._loading: dict[uuid.UUID, asyncio.Future[AlertPage | None]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(
        self, alert_id: uuid.UUID, load: Callable[[uuid.UUID], Awaitable[AlertPage | None]]
    ) -> AlertPage | None:
        """The cached page of `alert_id`, loaded with `load` when absent or stale."""
        entry = self._entries.get(alert_id)
        if entry is not None and entry.expires > self._clock():
            self._entries.move_to_end(alert_id)
            return entry.page
        flight = self._loading.get(alert_id)
        if flight is None:
            flight = asyncio.ensure_future(self._load(alert_id, load))
            self._loading[alert_id] = flight
        # one waiter giving up must not cancel the load the others wait for
        return await asyncio.shield(flight)

    async def _load(
        self, alert_id: uuid.UUID, load: Callable[[uuid.UUID], Awaitable[AlertPage | None]]
    ) -> AlertPage | None:
        try:
            page = await load(alert_id)
        finally:
            del self._loading[alert_id]
        ttl = self._ttl if page is not None else min(self._ttl, MISSING_TTL_SECONDS)
        self._entries[alert_id] = _Entry(page, self._clock() + ttl)
        self._entries.move_to_end(alert_id)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return page


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _button(name: str, link: str) -> str:
    # only web links: a `javascript:` or `#{link}` button has no place on a public page
    if not link.startswith(("https://", "http://")):
        return ""
    return f'<a href="{_e(link)}" rel="noopener nofollow">{_e(name)}</a>'


def render_alert(page: AlertPage, share_url: str) -> str:
    """The landing page of an alert, every value HTML-escaped."""
    content = ALERT.substitute(
        category=_e(page.category),
        category_label=_e(CATEGORY_LABELS.get(page.category, page.category)),
        title=_e(page.title),
        created_iso=_e(page.created_at.isoformat()),
        created_local=_e(page.created_at.astimezone(KST).strftime("%Y-%m-%d %H:%M KST")),
        body=_e(page.body),
        buttons="".join(_button(name, link) for name, link in page.buttons),
        share_url=_e(share_url),
    )
    summary = " ".join(page.body.split())[:120]
    return PAGE.substitute(title=_e(page.title), summary=_e(summary), content=content)


def render_missing() -> str:
    """The page for an alert that does not exist (or a link that is not valid)."""
    content = (
        "<article><h1>알림을 찾을 수 없습니다</h1>"
        '<p class="body">링크가 잘못되었거나 만료되었습니다.</p></article>'
    )
    return PAGE.substitute(title="알림을 찾을 수 없습니다", summary="", content=content)
