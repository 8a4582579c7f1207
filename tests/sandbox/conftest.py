"""The sandbox served in-process over real HTTP, reset to its settings after every test."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from tests.clocks import ManualClock

from sandbox.behaviour import Behaviour, SmsBehaviour
from sandbox.client import SandboxClient
from sandbox.config import SandboxSettings
from sandbox.dealer import Dealer
from sandbox.main import create_app
from sandbox.server import serving
from sandbox.sms_dealer import SmsDealer

APPKEY = "test-appkey"
SECRET = "sandbox-test-secret-0123456789"
SEND_NO = "0312281234"

BatchBuilder = Callable[..., dict[str, Any]]


@pytest.fixture(scope="session")
def sandbox_settings() -> SandboxSettings:
    """Settings of the test sandbox: known appkey and secret, no simulated readers."""
    return SandboxSettings(
        environment="test",
        tracking_secret=SecretStr("test-tracking-secret-0123456789"),
        sandbox_appkey=APPKEY,
        sandbox_secret_key=SecretStr(SECRET),
        sandbox_profile="off",
        sandbox_seed=7,
        sandbox_hang_seconds=1.0,
        sandbox_tap_concurrency=4,
        sandbox_sms_send_no=SEND_NO,
        sandbox_sms_seed=11,
    )


@pytest.fixture(scope="session")
async def sandbox_app(sandbox_settings: SandboxSettings) -> AsyncIterator[tuple[FastAPI, str]]:
    """The sandbox app and its base URL, for the whole session."""
    app = create_app(sandbox_settings)
    async with serving(app) as url:
        yield app, url


@pytest.fixture
def dealer(sandbox_app: tuple[FastAPI, str]) -> Dealer:
    """The running sandbox's dealer, for what only the process itself can see."""
    found: Dealer = sandbox_app[0].state.dealer
    return found


@pytest.fixture
def sms_dealer(sandbox_app: tuple[FastAPI, str]) -> SmsDealer:
    """The running sandbox's SMS dealer."""
    found: SmsDealer = sandbox_app[0].state.sms_dealer
    return found


@pytest.fixture
def ticks(dealer: Dealer, sms_dealer: SmsDealer) -> Iterator[ManualClock]:
    """Both dealers' rate buckets refill by a clock the test moves (`ticks.advance`), not by
    the wall: a refill is proven without waiting for it."""
    clock = ManualClock()
    dealer.pace = sms_dealer.pace = clock.now
    # the buckets are made again on each clock they refill by
    dealer.reset()
    sms_dealer.reset()
    yield clock
    dealer.pace = sms_dealer.pace = time.monotonic
    dealer.reset()
    sms_dealer.reset()


@pytest.fixture
async def sandbox(
    sandbox_app: tuple[FastAPI, str],
    sandbox_settings: SandboxSettings,
    dealer: Dealer,
    sms_dealer: SmsDealer,
) -> AsyncIterator[SandboxClient]:
    """A client of the session's sandbox, which is put back to its settings after the test."""
    async with httpx.AsyncClient(base_url=sandbox_app[1], timeout=5.0) as http:
        yield SandboxClient(http, APPKEY, SECRET)
    dealer.apply(Behaviour.from_settings(sandbox_settings))
    sms_dealer.apply(SmsBehaviour.from_settings(sandbox_settings))
    dealer.reset()
    sms_dealer.reset()
    dealer.clock.offset = 0.0


@pytest.fixture
def make_batch() -> BatchBuilder:
    """Builds a valid send body: `make_batch(batch_id, numbers, message_type=..., link=...)`."""

    def build(
        batch_id: str,
        numbers: list[str],
        message_type: str = "ALIMTALK",
        link: str = "http://127.0.0.1:9/r/",
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "senderKey": "suwon-channel",
            "messageType": message_type,
            "title": "태풍 링링 대비 안내",
            "content": "태풍이 옵니다. #{name}님, 창문을 단단히 고정하세요.",
            "buttons": [{"name": "자세히 보기", "linkMo": "#{link}"}],
            "isAd": False,
            "senderGroupingKey": batch_id,
            "recipientList": [
                {
                    "recipientNo": number,
                    "recipientGroupingKey": str(i),
                    "templateParameter": {"link": f"{link}{number}", "name": "시민"},
                }
                for i, number in enumerate(numbers, 1)
            ],
        }
        if message_type == "ALIMTALK":
            body["templateCode"] = "ALERT_V1"
        return body

    return build


@pytest.fixture
def make_sms() -> BatchBuilder:
    """Builds a valid SMS (or LMS, with `title`) send body:
    `make_sms(batch_id, numbers, body=..., title=None, link=...)`."""

    def build(
        batch_id: str,
        numbers: list[str],
        body: str = "[수원시] 태풍 북상, 외출 자제 ##link##",
        title: str | None = None,
        link: str = "http://127.0.0.1:9/r/",
    ) -> dict[str, Any]:
        document: dict[str, Any] = {
            "sendNo": SEND_NO,
            "body": body,
            "senderGroupingKey": batch_id,
            "recipientList": [
                {
                    "recipientNo": number,
                    "recipientGroupingKey": str(i),
                    "templateParameter": {"link": f"{link}{number}"},
                }
                for i, number in enumerate(numbers, 1)
            ],
        }
        if title is not None:
            document["title"] = title
        return document

    return build


def numbers(count: int, start: int = 0) -> list[str]:
    """`count` distinct phone numbers."""
    return [f"010{start + i:08d}" for i in range(count)]


@pytest.fixture
def phone_numbers() -> Callable[..., list[str]]:
    """`phone_numbers(count, start=0)`: distinct phone numbers."""
    return numbers
