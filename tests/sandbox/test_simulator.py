"""The recipient simulator against a real HTTP server of the test's own that records taps."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from tests.waiting import eventually

from sandbox.client import SandboxClient
from sandbox.server import serving
from sandbox.simulator import RecipientSimulator, merge_cookies
from sandbox.stats import Stats
from sandbox.taps import TapConnection

BatchBuilder = Callable[..., dict[str, Any]]
Numbers = Callable[..., list[str]]
COOKIE = "allim_reader"


@dataclass
class Recorder:
    """Taps seen by the stand-in gateway: (token, cookie sent or None, reader id)."""

    url: str
    taps: list[tuple[str, str | None, str]] = field(default_factory=list)
    issued: dict[str, str] = field(default_factory=dict)  # reader id -> token first tapped


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    """A tiny `/r/{token}` server: sets a reader cookie on first visit, then redirects."""
    found = Recorder("")

    async def tap(request: Request) -> Response:
        token = request.path_params["token"]
        sent = request.cookies.get(COOKIE)
        reader = sent or uuid.uuid4().hex
        if sent is None:
            found.issued[reader] = token
        found.taps.append((token, sent, reader))
        response = RedirectResponse("/a/alert", status_code=302)
        if sent is None:
            response.set_cookie(COOKIE, reader, max_age=3600, httponly=True)
        return response

    app = Starlette(routes=[Route("/r/{token}", tap)])
    async with serving(app) as url:
        found.url = url
        yield found


async def _settled(sandbox: SandboxClient, recorder: Recorder) -> dict[str, Any]:
    """The totals once some taps were made and none is scheduled or under way any more."""
    totals: dict[str, Any] = {}

    async def settled() -> bool:
        nonlocal totals
        totals = (await sandbox.stats())["totals"]
        done = totals["taps_made"] + totals["taps_failed"]
        return totals["taps_pending"] == 0 and done > 0

    await eventually(settled, 60, what="settled")
    # the stand-in gateway saw every tap before the simulator counted it
    assert totals["taps_made"] + totals["taps_failed"] == len(recorder.taps)
    return totals


async def _broadcast(
    sandbox: SandboxClient,
    recorder: Recorder,
    make_batch: BatchBuilder,
    phone_numbers: Numbers,
    alert: str,
    batches: int = 4,
) -> None:
    for seq in range(batches):
        body = make_batch(
            f"{alert}:0:{seq}", phone_numbers(500, seq * 500), link=f"{recorder.url}/r/"
        )
        assert (await sandbox.send(body)).status_code == 200


@pytest.mark.slow
async def test_typical_readers_tap_forward_and_keep_their_cookie(
    sandbox: SandboxClient, recorder: Recorder, make_batch: BatchBuilder, phone_numbers: Numbers
) -> None:
    await sandbox.configure(
        profile="typical", time_scale=100_000, seed=42, inactive_share=0.1, non_kakao_share=0.1
    )
    await _broadcast(sandbox, recorder, make_batch, phone_numbers, "sim-a")
    totals = await _settled(sandbox, recorder)
    assert totals["taps_failed"] == 0
    assert totals["taps_made"] == len(recorder.taps)
    delivered = await sandbox.recipients("sim-a")
    assert 1400 <= len(delivered) <= 1800
    tapped_tokens = {token for token, _, _ in recorder.taps}
    # only recipients accepted with 1000 ever read; most of them do
    assert tapped_tokens <= delivered
    assert len(tapped_tokens) / len(delivered) == pytest.approx(0.80, abs=0.05)
    readers = len(recorder.issued)
    assert readers / len(delivered) == pytest.approx(1.07, abs=0.1)
    # forwarded friends are new people on the same link
    readers_per_token = Counter(recorder.issued.values())
    assert any(n > 1 for n in readers_per_token.values())
    # people who tap again send back the cookie their first tap was given, on the same link
    returning = [(token, sent) for token, sent, _ in recorder.taps if sent is not None]
    assert len(returning) >= 0.05 * readers
    assert all(recorder.issued[sent] == token for token, sent in returning)


@pytest.mark.slow
async def test_a_seed_makes_the_simulation_repeatable(
    sandbox: SandboxClient, recorder: Recorder, make_batch: BatchBuilder, phone_numbers: Numbers
) -> None:
    runs = []
    for _ in range(2):
        await sandbox.reset()
        recorder.taps.clear()
        recorder.issued.clear()
        # a run starts from the seed even when the stream was used or reseeded before
        await sandbox.configure(profile="viral", time_scale=100_000, seed=None)
        await sandbox.configure(seed=7)
        await _broadcast(sandbox, recorder, make_batch, phone_numbers, "sim-b", batches=1)
        await _settled(sandbox, recorder)
        runs.append(sorted(Counter(recorder.issued.values()).items()))
    assert runs[0] == runs[1]
    readers = sum(n for _, n in runs[0])
    # 500 delivered: the calibration itself is tested over 200,000 in test_people
    assert readers / 500 == pytest.approx(1.57, abs=0.3)


@pytest.mark.slow
async def test_people_tap_a_link_they_got_by_sms_less_often(
    sandbox: SandboxClient,
    recorder: Recorder,
    make_batch: BatchBuilder,
    make_sms: BatchBuilder,
    phone_numbers: Numbers,
) -> None:
    await sandbox.configure(profile="typical", time_scale=100_000, seed=3)
    await sandbox.configure_sms(read_factor=0.5)
    kakao, sms = phone_numbers(2000), phone_numbers(2000, 10_000)
    link = f"{recorder.url}/r/"
    for seq in range(4):
        part = slice(seq * 500, (seq + 1) * 500)
        sent = await sandbox.send(make_batch(f"sim-s:0:{seq}", kakao[part], link=link))
        assert sent.status_code == 200
        sent = await sandbox.send_sms(make_sms(f"sim-s:1:{seq}", sms[part], link=link))
        assert sent.status_code == 200
    await _settled(sandbox, recorder)
    tapped = {token for token, _, _ in recorder.taps}
    # typical: 80% of KakaoTalk recipients read; by SMS half as many, 40%
    assert len(tapped & set(kakao)) / 2000 == pytest.approx(0.80, abs=0.04)
    assert len(tapped & set(sms)) / 2000 == pytest.approx(0.40, abs=0.04)
    assert tapped <= set(kakao) | set(sms)


async def test_no_taps_when_the_profile_is_off_or_nothing_was_delivered(
    sandbox: SandboxClient, recorder: Recorder, make_batch: BatchBuilder, phone_numbers: Numbers
) -> None:
    await sandbox.configure(profile="off", time_scale=100_000)
    await _broadcast(sandbox, recorder, make_batch, phone_numbers, "sim-c", batches=1)
    await sandbox.configure(profile="quiet", temporary_failure_share=1.0)
    await _broadcast(sandbox, recorder, make_batch, phone_numbers, "sim-d", batches=1)
    # links are scheduled as the send is answered: none was, so none can be tapped later
    assert (await sandbox.stats())["totals"]["taps_pending"] == 0
    # and taps do reach this recorder: a delivered batch after them is read, and only it
    await sandbox.configure(profile="typical", temporary_failure_share=0.0, seed=5)
    marker = make_batch("sim-m:0:0", phone_numbers(200, 5000), link=f"{recorder.url}/r/")
    assert (await sandbox.send(marker)).status_code == 200
    await _settled(sandbox, recorder)
    assert {token for token, _, _ in recorder.taps} <= await sandbox.recipients("sim-m")


async def test_failed_taps_are_counted(
    sandbox: SandboxClient, make_batch: BatchBuilder, phone_numbers: Numbers
) -> None:
    await sandbox.configure(profile="typical", time_scale=100_000, seed=1)
    # nothing listens on port 9 of the loopback (discard), so every tap fails
    body = make_batch("sim-e:0:1", phone_numbers(50), link="http://127.0.0.1:9/r/")
    assert (await sandbox.send(body)).status_code == 200
    totals: dict[str, Any] = {}

    async def settled() -> bool:
        nonlocal totals
        totals = (await sandbox.stats())["totals"]
        return bool(totals["taps_failed"] and not totals["taps_pending"])

    await eventually(settled, 60, what="settled")
    assert totals["taps_made"] == 0
    assert totals["taps_failed"] >= 20


def test_cookies_merge_as_a_browser_would() -> None:
    assert merge_cookies(None, []) is None
    assert merge_cookies(None, ["allim_reader=abc; Path=/; HttpOnly"]) == "allim_reader=abc"
    assert merge_cookies("allim_reader=abc", ["other=1; Max-Age=60"]) == (
        "allim_reader=abc; other=1"
    )
    assert merge_cookies("allim_reader=abc", ["allim_reader=def"]) == "allim_reader=def"


async def test_scheduled_taps_are_bounded_and_wait_for_their_time() -> None:
    stats = Stats(60)
    client = TapConnection(timeout=1.0)
    simulator = RecipientSimulator([client], stats, max_pending=50)
    simulator.configure("viral", time_scale=1.0, seed=4)
    running = asyncio.create_task(simulator.run())
    try:
        simulator.delivered(f"http://gw/r/{i}" for i in range(500))
        # the 500 links are drawn in one go, dropping what does not fit
        await eventually(lambda: stats.totals.taps_dropped > 0, what="drawn")
        # in real time people take minutes (this seed's first tap is 15 s away): nobody has
        # tapped yet, and the heap is capped
        assert stats.totals.taps_made + stats.totals.taps_failed == 0
        assert 0 < simulator.pending <= 50
        assert stats.totals.taps_dropped > 0
        simulator.clear()
        assert simulator.pending == 0
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
