"""The recipient simulator: taps tracked links on behalf of the people `people` plans for.

Accepted links queue up cheaply on the send path; a background loop draws each one's
cascade of taps and keeps them in a heap by due time (bounded: past `max_pending` they are
dropped and counted). Due taps go to a few workers, each with a keep-alive connection of its own
(`sandbox.taps`: a general HTTP client costs more CPU per tap than the gateway serving it).
Each person keeps one reader identity: the cookies their first tap was given are sent
back when they tap again; a forwarded friend is a new person with no cookie.

People tap a link they got by SMS or LMS less often than one they got by KakaoTalk: each
channel has a read factor that scales the profile's share of recipients who read (those who
read forward as often, whatever the channel).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import logging
import random
from collections import deque
from collections.abc import Iterable, Sequence
from http.cookies import CookieError, SimpleCookie
from typing import Literal

from sandbox.people import PROFILES, ReaderModel
from sandbox.stats import Stats
from sandbox.taps import TapConnection, TapError

logger = logging.getLogger(__name__)

# links drawn into cascades per turn of the loop, so the event loop stays responsive
_DRAW_CHUNK = 2000

# (due loop time, sequence, link, person id or 0 when the person taps only once)
_Entry = tuple[float, int, str, int]

Channel = Literal["kakao", "sms"]
CHANNELS: tuple[Channel, ...] = ("kakao", "sms")


def merge_cookies(previous: str | None, set_cookie_headers: Iterable[str]) -> str | None:
    """The Cookie header a browser sends after `previous` and the given Set-Cookie headers."""
    jar: dict[str, str] = {}
    if previous:
        for pair in previous.split("; "):
            name, _, value = pair.partition("=")
            jar[name] = value
    for header in set_cookie_headers:
        parsed: SimpleCookie = SimpleCookie()
        try:
            parsed.load(header)
        except CookieError:
            logger.warning("ignored a malformed Set-Cookie header %r", header)
            continue
        for name, morsel in parsed.items():
            jar[name] = morsel.value
    if not jar:
        return None
    return "; ".join(f"{name}={value}" for name, value in jar.items())


class RecipientSimulator:
    """Simulated people tapping the tracked links of accepted messages."""

    def __init__(self, clients: Sequence[TapConnection], stats: Stats, *, max_pending: int) -> None:
        if not clients:
            raise ValueError("The recipient simulator needs at least one tap connection.")
        self._clients = clients
        self._stats = stats
        self._max_pending = max_pending
        self._due: asyncio.Queue[tuple[str, int]] = asyncio.Queue(maxsize=len(clients))
        self._delivered: deque[tuple[str, float, Channel]] = deque()
        self._heap: list[_Entry] = []
        self._seq = 0
        self._persons = 0
        # cookies and later taps (due times) of people who tap more than once, by person id
        self._cookies: dict[int, str] = {}
        self._later: dict[int, list[float]] = {}
        self._later_count = 0
        self._tapping = 0  # taps taken off the heap and not yet made
        self._wake = asyncio.Event()
        self._models: dict[Channel, ReaderModel] = {}
        self._read_factors: dict[Channel, float] = dict.fromkeys(CHANNELS, 1.0)
        self._rng = random.Random()
        self._drawing: tuple[str, int | None] | None = None
        self._time_scale = 1.0

    def configure(self, profile: str, time_scale: float, seed: int | None) -> None:
        """Use `profile` ('off' stops new cascades) at `time_scale`, drawing from `seed`.

        The random stream restarts only when the profile or the seed changes.
        """
        self._time_scale = time_scale
        if (profile, seed) == self._drawing:
            return
        self._drawing = (profile, seed)
        self._rng = random.Random(seed)
        self._build_models()

    def set_read_factor(self, channel: Channel, factor: float) -> None:
        """People who got a message by `channel` read it `factor` times as often as the
        profile says (1 for KakaoTalk unless told otherwise)."""
        if self._read_factors[channel] == factor:
            return
        self._read_factors[channel] = factor
        self._build_models()

    def _build_models(self) -> None:
        # the models share one random stream: a new read factor does not restart it
        self._models.clear()
        if self._drawing is None or self._drawing[0] not in PROFILES:
            return
        profile = PROFILES[self._drawing[0]]
        for channel, factor in self._read_factors.items():
            scaled = dataclasses.replace(profile, read_share=profile.read_share * factor)
            self._models[channel] = ReaderModel(scaled, self._rng)

    @property
    def pending(self) -> int:
        """Taps scheduled or under way and not yet made, plus links waiting for their cascade."""
        return len(self._heap) + self._later_count + len(self._delivered) + self._tapping

    def delivered(self, links: Iterable[str], channel: Channel = "kakao") -> None:
        """Messages with these tracked links were accepted by `channel`'s dealer just now."""
        if not self._models:
            return
        now = asyncio.get_running_loop().time()
        self._delivered.extend((link, now, channel) for link in links)
        self._wake.set()

    def clear(self) -> None:
        """Forget every scheduled tap."""
        self._delivered.clear()
        self._heap.clear()
        self._cookies.clear()
        self._later.clear()
        self._later_count = 0

    async def run(self) -> None:
        """Draw cascades and make the taps as they fall due, until cancelled."""
        loop = asyncio.get_running_loop()
        workers = [asyncio.create_task(self._work(client)) for client in self._clients]
        try:
            while True:
                if self._delivered:
                    self._draw()
                    await asyncio.sleep(0)
                    continue
                if not self._heap:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                wait = self._heap[0][0] - loop.time()
                if wait > 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await self._wake.wait()
                    continue
                _, _, link, person = heapq.heappop(self._heap)
                self._tapping += 1
                # waits while every worker is busy: the heap, not the queue, holds the backlog
                await self._due.put((link, person))
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _work(self, client: TapConnection) -> None:
        while True:
            link, person = await self._due.get()
            try:
                await self._tap(client, link, person)
            finally:
                self._tapping -= 1

    def _draw(self) -> None:
        models = self._models
        scale = self._time_scale
        for _ in range(min(_DRAW_CHUNK, len(self._delivered))):
            link, accepted_at, channel = self._delivered.popleft()
            model = models.get(channel)
            if model is None:
                continue
            taps = model.cascade()
            if not taps:
                continue
            if self.pending + len(taps) > self._max_pending:
                self._stats.totals.taps_dropped += len(taps)
                continue
            dues: dict[int, list[float]] = {}
            for tap in taps:
                dues.setdefault(tap.person, []).append(accepted_at + tap.at / scale)
            for times in dues.values():
                times.sort()
                person = 0
                if len(times) > 1:
                    # a person who taps again: their next tap waits until this one is done,
                    # so it carries the cookie this one is given
                    self._persons += 1
                    person = self._persons
                    self._later[person] = times[1:]
                    self._later_count += len(times) - 1
                self._push(times[0], link, person)

    def _push(self, due: float, link: str, person: int) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, link, person))
        if self._heap[0][1] == self._seq:
            self._wake.set()

    async def _tap(self, client: TapConnection, link: str, person: int) -> None:
        cookie = self._cookies.get(person) if person else None
        set_cookies = await self._get(client, link, cookie)
        if not person:
            return
        later = self._later.get(person)
        if later:
            merged = merge_cookies(cookie, set_cookies or ())
            if merged:
                self._cookies[person] = merged
            self._later_count -= 1
            due = later.pop(0)
            self._push(max(due, asyncio.get_running_loop().time()), link, person)
        else:
            self._later.pop(person, None)
            self._cookies.pop(person, None)

    async def _get(self, client: TapConnection, link: str, cookie: str | None) -> list[str] | None:
        """Tap `link` sending `cookie`; the Set-Cookie headers, or None when the tap failed."""
        totals = self._stats.totals
        try:
            answer = await client.get(link, cookie)
        except TapError as exc:
            totals.taps_failed += 1
            logger.debug("%s", exc)
            return None
        if answer.status >= 400:
            totals.taps_failed += 1
            logger.debug("tap on %s answered %s", link, answer.status)
            return None
        totals.taps_made += 1
        return answer.set_cookies
