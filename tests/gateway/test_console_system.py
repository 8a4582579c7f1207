"""The operator console against the whole system: `allim gateway`, `allim broadcaster` and
`allim analytics` as child processes with the sandbox dealer and its simulated readers, on
the session's Kafka and PostgreSQL, driven in Debian's Chromium.

An operator composes an alert to a few hundred subscribers with the SMS fallback off and
submits it; an approver approves it, pauses it while it is sent (the sandbox answers slowly,
so it is sent for seconds) and resumes it; the alert is watched to its end and the figures on
screen are the API's once every read is counted; a failure (the sandbox refuses a share of
recipients for good) is looked up and resent, and the resend approved and delivered; the
audit trail names each action and person. Each screen is photographed on the way
(`tests/gateway/browsers.py` says where). Every wait is on a condition.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.broadcaster.children import TRACKING_SECRET, Sandbox, Spawn
from tests.gateway.browsers import browser, chromium, korean_context, screenshot, watch_errors
from tests.system import broadcaster_env, sandbox, spawn
from tests.waiting import eventually

from cli.processes import Service, free_port
from common.db import session_factory
from common.models import Subscriber, User
from gateway import users
from gateway.auth import create_key

pytestmark = pytest.mark.integration
__all__ = ["broadcaster_env", "browser", "chromium", "sandbox", "spawn"]  # fixtures

PASSWORD = "typhoon shelter 2026"
AUDIENCE = 300
# the share of numbers the sandbox refuses for good (3018, inactive): about 15 of 300
INACTIVE_SHARE = 0.05
expect.set_options(timeout=20_000)


@dataclass(frozen=True)
class Person:
    name: str
    key: str  # an API key of the same user, to read what the API says


@dataclass(frozen=True)
class System:
    url: str  # the gateway's
    district: str  # the audience's, a district of its own
    operator: Person
    approver: Person
    admin: Person


async def _person(engine: AsyncEngine, role: str) -> Person:
    name = f"system {role} {uuid.uuid4().hex[:6]}"
    async with session_factory(engine)() as session, session.begin():
        user: User = await users.create(session, name, role, PASSWORD)
        key = await create_key(session, user, "console system test")
    return Person(name, key)


async def _audience(engine: AsyncEngine) -> str:
    """AUDIENCE active subscribers in a district of their own; its name."""
    district = f"시험구-{uuid.uuid4().hex[:6]}"
    async with session_factory(engine)() as session, session.begin():
        session.add_all(
            Subscriber(recipient_no=f"01055{n:06d}", district=district, tags=[])
            for n in range(AUDIENCE)
        )
    return district


@pytest.fixture
def readers(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The session's sandbox with simulated people who read fast, answering slowly (so a
    broadcast lasts seconds) and refusing a share of numbers for good; as it was afterwards."""
    before = httpx.get(f"{sandbox.url}/_sandbox/config", timeout=10).json()
    sandbox.configure(
        profile="typical",
        time_scale=36_000.0,  # a simulated day of reading in under three seconds
        seed=20261125,
        latency_ms=250.0,
        inactive_share=INACTIVE_SHARE,
    )
    try:
        yield sandbox
    finally:
        sandbox.configure(**before)


@pytest.fixture
async def system(
    database_url: str,
    kafka_topics: str,
    engine: AsyncEngine,
    readers: Sandbox,
    spawn: Spawn,
    tmp_path: Path,
) -> AsyncIterator[System]:
    """The gateway (approval on), analytics and a broadcaster as child processes."""
    # the planner's new consumer group reads `alerts.requested` from its start: the alerts
    # earlier tests of the session left queued would be planned and sent first, at this
    # test's slow dealer, before its own; they end here, so planning them is a skip
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE alerts SET status = 'cancelled', status_reason = 'left by a test'"
                " WHERE status IN ('queued', 'scheduled', 'sending')"
            )
        )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    group = f"console-system-{uuid.uuid4().hex[:8]}"
    stack = {
        "ALLIM_ENVIRONMENT": "test",
        "ALLIM_DATABASE_URL": database_url,
        "ALLIM_KAFKA_BOOTSTRAP": kafka_topics,
        "ALLIM_TRACKING_SECRET": TRACKING_SECRET,
        "ALLIM_PUBLIC_BASE_URL": url,
        "ALLIM_LOG_LEVEL": "WARNING",
    }
    metrics = free_port()
    services = [
        Service(
            "gateway",
            ["gateway"],
            {
                **stack,
                "ALLIM_GATEWAY_PORT": str(port),
                "ALLIM_GATEWAY_APPROVAL_REQUIRED": "true",
                "ALLIM_GATEWAY_SSE_POLL_SECONDS": "0.2",
                "ALLIM_GATEWAY_OUTBOX_POLL_SECONDS": "0.1",
            },
            f"{url}/readyz",
            tmp_path / "gateway.log",
        ),
        Service(
            "analytics",
            ["analytics"],
            {
                **stack,
                "ALLIM_ANALYTICS_GROUP_ID": group,
                "ALLIM_ANALYTICS_CONSUMER_NAME": group,
                "ALLIM_ANALYTICS_METRICS_PORT": str(metrics),
                "ALLIM_ANALYTICS_SNAPSHOT_SECONDS": "0.5",
            },
            f"http://127.0.0.1:{metrics}/metrics",
            tmp_path / "analytics.log",
        ),
        # batches of 10 one at a time at 250 ms each: about 40 messages a second
        spawn(
            "all",
            ALLIM_PUBLIC_BASE_URL=url,
            ALLIM_BROADCASTER_BATCH_SIZE="10",
            ALLIM_BROADCASTER_MAX_IN_FLIGHT="1",
            ALLIM_LOG_LEVEL="WARNING",
        ),
    ]
    district = await _audience(engine)
    people = [await _person(engine, role) for role in ("operator", "approver", "admin")]
    try:
        for service in services:
            service.start()  # all three start at once; then each is waited for
        for service in services:
            service.wait_ready(60)
        yield System(url, district, *people)
    finally:
        for service in reversed(services):
            service.stop()


async def _sign_in(page: Page, system: System, person: Person) -> None:
    await page.goto(f"{system.url}/console/")
    await expect(page.get_by_role("heading", name="로그인")).to_be_visible()
    await page.get_by_label("이름", exact=True).fill(person.name)
    await page.get_by_label("비밀번호", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="로그인").click()
    await expect(page.locator("#who")).to_contain_text(person.name)


async def _get(url: str, person: Person | None = None) -> Any:
    headers = {"X-API-Key": person.key} if person else {}
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(url, headers=headers)
    answer.raise_for_status()
    return answer.json()


async def _api(system: System, person: Person, path: str) -> Any:
    return await _get(f"{system.url}{path}", person)


async def _taps(sandbox: Sandbox) -> dict[str, int]:
    totals: dict[str, int] = (await _get(f"{sandbox.url}/_sandbox/stats"))["totals"]
    return totals


def _number(value: int) -> str:
    return f"{value:,}"


def _percent(value: float | None) -> str:
    return "\u2013" if value is None else f"{value * 100:.1f}%"


async def test_an_alert_composed_approved_paused_watched_and_its_failures_resent(
    system: System, readers: Sandbox, browser: Browser
) -> None:
    taps_before = await _taps(readers)
    writing = await korean_context(browser)
    deciding = await korean_context(browser)
    try:
        page = await writing.new_page()
        errors = watch_errors(page)
        await page.goto(f"{system.url}/console/")
        await expect(page.get_by_role("heading", name="로그인")).to_be_visible()
        await screenshot(page, "console-signin")
        await _sign_in(page, system, system.operator)

        # compose: the audience's district, its count the database's, no SMS fallback
        await page.get_by_role("link", name="새 알림 작성").click()
        title = f"단수 안내 {uuid.uuid4().hex[:4]}"
        await page.locator("#title").fill(title)
        await page.locator("#body").fill("내일 오전 9시부터 6시까지 단수됩니다.\n물을 받아 두세요.")
        await page.get_by_label("지역·태그로 선택").check()
        await page.get_by_label(system.district, exact=True).check()
        await expect(page.locator("#recipient-count")).to_have_text(_number(AUDIENCE))
        await page.get_by_label("카카오톡으로 받지 못한 사람에게 문자로 보내기").uncheck()
        await expect(page.locator("#sms-none")).to_be_visible()
        await screenshot(page, "console-compose")
        await page.get_by_role("button", name="승인 요청").click()
        await expect(page.locator("#alert-title")).to_have_text(title)
        await expect(page.locator(".title-row .badge")).to_have_text("승인 대기")
        alert_id = page.url.rsplit("/", 1)[-1]

        # a second person approves it from what waits for them
        review = await deciding.new_page()
        errors += watch_errors(review)
        await _sign_in(review, system, system.approver)
        await review.goto(f"{system.url}/console/#/alerts?view=mine")
        row = review.locator(f'tr[data-id="{alert_id}"]')
        await row.get_by_role("link", name="검토").click()
        await expect(review.locator("#author")).to_have_text(system.operator.name)
        await expect(review.locator("#review-recipients")).to_have_text(f"{AUDIENCE}명")
        await screenshot(review, "console-review")
        await review.get_by_role("button", name="승인하고 발송").click()

        # paused while it is sent, then resumed
        await expect(review.locator(".title-row .badge")).to_have_text("발송 중")
        await expect(review.locator("#fig-delivered")).not_to_have_text("0")
        await review.get_by_role("button", name="일시정지").click()
        await review.locator("dialog").get_by_role("button", name="일시정지").click()
        await expect(review.locator(".title-row .badge")).to_have_text("일시정지")
        paused = await _api(system, system.approver, f"/v1/alerts/{alert_id}")
        assert paused["status"] == "paused"
        assert paused["delivered"] + paused["failed"] < AUDIENCE, paused
        await review.get_by_role("button", name="재개").click()
        await review.locator("dialog").get_by_role("button", name="재개").click()

        # watched to its end on the author's screen, live
        await expect(page.locator(".title-row .badge")).to_have_text("발송 완료")
        await expect(page.locator("#stream-state")).to_have_text("발송이 끝났습니다.")
        ended = await _api(system, system.operator, f"/v1/alerts/{alert_id}")
        assert ended["delivered"] + ended["failed"] == AUDIENCE
        assert 0 < ended["failed"] < AUDIENCE * INACTIVE_SHARE * 3, ended

        # the failures, KakaoTalk's refusal for good, not handed to SMS: looked up
        failures = page.locator("#failures-table tbody tr")
        await expect(failures).to_have_count(ended["failed"])
        await expect(failures.locator(".code")).to_have_text(["3018"] * ended["failed"])
        failed_no = await failures.first.get_attribute("data-number")
        assert failed_no is not None
        assert readers.sms_numbers(uuid.UUID(alert_id)) == []
        await page.get_by_label("수신자 번호").fill(
            f"{failed_no[:3]}-{failed_no[3:7]}-{failed_no[7:]}"
        )
        await page.get_by_role("button", name="조회").click()
        await expect(page.locator("#lookup-outcome")).to_have_text("실패")
        await expect(page.locator("#lookup-detail")).to_contain_text("3018")
        await expect(page.locator("#lookup-channel")).to_have_text("카카오톡")

        # resent to those failures (3018 is left out unless asked), once the sandbox takes them
        readers.configure(inactive_share=0.0)
        await page.get_by_label("사업자 코드").fill("3018")
        await page.get_by_role("button", name="실패한 수신자에게 재발송").click()
        await page.locator("dialog").get_by_role("button", name="재발송").click()
        await expect(page.locator("#resend-recipients")).to_have_text(f"{ended['failed']}명")
        await expect(page.locator("#resend-status")).to_have_text("승인 대기")
        children = (await _api(system, system.operator, f"/v1/alerts?parent_id={alert_id}"))[
            "items"
        ]
        [child] = [c["id"] for c in children]
        await review.goto(f"{system.url}/console/#/alerts/{child}/review")
        await review.get_by_role("button", name="승인하고 발송").click()
        await expect(review.locator(".title-row .badge")).to_have_text("발송 완료")
        resent = await _api(system, system.approver, f"/v1/alerts/{child}")
        assert (resent["delivered"], resent["failed"]) == (ended["failed"], 0)

        # every read counted: the sandbox has made every tap it will, and analytics counted each
        async def every_tap_counted() -> bool:
            totals = await _taps(readers)
            made = totals["taps_made"] - taps_before["taps_made"]
            counted = [
                (await _api(system, system.operator, f"/v1/alerts/{a}/stats"))["taps"]
                for a in (alert_id, child)
            ]
            return totals["taps_pending"] == 0 and made == sum(counted) > 0

        await eventually(every_tap_counted, 30, what="every tap counted")

        # the figures on screen are the API's
        status = await _api(system, system.operator, f"/v1/alerts/{alert_id}")
        stats = await _api(system, system.operator, f"/v1/alerts/{alert_id}/stats")
        assert stats["readers"] > 0 and stats["delivered"] == status["delivered"]
        await page.reload()
        await expect(page.locator("#fig-delivered")).to_have_text(_number(status["delivered"]))
        await expect(page.locator("#fig-failed")).to_have_text(_number(status["failed"]))
        await expect(page.locator("#fig-read-rate")).to_have_text(_percent(status["read_rate"]))
        await expect(page.locator("#stat-readers")).to_have_text(_number(stats["readers"]))
        await expect(page.locator("#stat-read-rate")).to_have_text(_percent(stats["read_rate"]))
        await expect(page.locator(f'#children-list li[data-id="{child}"]')).to_contain_text(
            "재발송"
        )
        await screenshot(page, "console-alert")

        # the trail names each action and who did it, newest first
        await review.goto(f"{system.url}/console/#/alerts/{alert_id}")
        trail = review.locator("#trail-table tbody tr")
        await expect(trail.locator("td:nth-child(3)")).to_have_text(
            ["재발송", "재개", "일시정지", "승인", "알림 작성"]
        )
        await expect(trail.locator("td:nth-child(2)")).to_have_text(
            [system.operator.name] + [system.approver.name] * 3 + [system.operator.name]
        )
        await review.goto(f"{system.url}/console/#/audit?alert_id={alert_id}")
        await expect(review.locator("#audit-table tbody tr")).to_have_count(5)
        await screenshot(review, "console-audit")

        # the other screens, photographed: the list, the subscribers, users and keys
        await page.goto(f"{system.url}/console/#/alerts")
        await expect(page.locator(f'tr[data-id="{alert_id}"] .status-completed')).to_be_visible()
        await screenshot(page, "console-alerts")
        await page.goto(f"{system.url}/console/#/subscribers")
        await expect(page.locator("#counts")).to_contain_text(system.district)
        await screenshot(page, "console-subscribers")
        assert errors == [], errors
    finally:
        await writing.close()
        await deciding.close()

    admin = await korean_context(browser)
    try:
        page = await admin.new_page()
        await _sign_in(page, system, system.admin)
        await page.get_by_role("link", name="사용자와 키").click()
        await expect(
            page.locator(f'#users-table tr[data-user="{system.operator.name}"]')
        ).to_be_visible()
        await screenshot(page, "console-accounts")
    finally:
        await admin.close()
