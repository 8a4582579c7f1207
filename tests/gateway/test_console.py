"""The operator console in a real browser: Debian's Chromium driven by Playwright, against
the real gateway served over HTTP on the session's PostgreSQL and Kafka, with approval on.

People are made per module with passwords (a uuid in each name, since the session's
database is shared). Every wait is Playwright's `expect`, which polls the page until the
condition holds or its timeout passes; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    expect,
)
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.gateway.browsers import browser, chromium, context, korean_context, watch_errors
from tests.gateway.scenes import Scene, build_scene
from tests.serving import served

from common.db import session_factory
from common.models import Subscriber, User
from gateway import users
from gateway.auth import create_key
from gateway.config import GatewaySettings
from gateway.main import create_app

pytestmark = pytest.mark.integration
__all__ = ["browser", "chromium", "context"]  # fixtures of tests/gateway/browsers.py

PASSWORD = "typhoon shelter 2026"
# Playwright's own waits: long enough for a loaded 2-core machine, short for a broken page
expect.set_options(timeout=10_000)


@dataclass(frozen=True)
class Person:
    name: str
    key: str  # an API key of the same user, for what the test sets up without the browser


@dataclass(frozen=True)
class Console:
    url: str
    operator: Person
    approver: Person
    second_approver: Person
    admin: Person


async def _person(engine: AsyncEngine, role: str) -> Person:
    name = f"console {role} {uuid.uuid4().hex[:8]}"
    async with session_factory(engine)() as session, session.begin():
        user: User = await users.create(session, name, role, PASSWORD)
        key = await create_key(session, user, "console test")
    return Person(name, key)


@pytest.fixture(scope="module")
async def console(
    gateway_settings: GatewaySettings, seeded_subscribers: list[str], engine: AsyncEngine
) -> AsyncIterator[Console]:
    """A gateway that needs approval, served over HTTP, and four people with passwords."""
    settings = gateway_settings.model_copy(
        update={"gateway_approval_required": True, "gateway_approval_sweep_seconds": 3600.0}
    )
    app = create_app(settings)
    roles = ("operator", "approver", "approver", "admin")
    people = [await _person(engine, role) for role in roles]
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(app.state.gateway.kafka.ready.wait(), 60)
        async with served(app) as url:
            yield Console(url, *people)


async def _sign_in(page: Page, console: Console, person: Person) -> None:
    await page.goto(f"{console.url}/console/")
    await page.get_by_label("이름", exact=True).fill(person.name)
    await page.get_by_label("비밀번호", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="로그인").click()
    await expect(page.locator("#who")).to_contain_text(person.name)


async def _pending_alert(console: Console, author: Person, title: str) -> str:
    """An alert `author` created through the API; it waits for approval."""
    async with httpx.AsyncClient(base_url=console.url) as http:
        answer = await http.post(
            "/v1/alerts",
            headers={"X-API-Key": author.key},
            json={
                "title": title,
                "body": "시험용 본문입니다.",
                "category": "public",
                "audience": {"districts": ["장안구"]},
            },
        )
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "pending_approval"
    return str(answer.json()["id"])


async def _active_in(engine: AsyncEngine, district: str) -> int:
    async with session_factory(engine)() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Subscriber)
            .where(Subscriber.district == district, Subscriber.status == "active")
        )
    return int(count or 0)


async def test_compose_submit_approve_and_audit(
    console: Console, context: BrowserContext, browser: Browser, engine: AsyncEngine
) -> None:
    page = await context.new_page()
    errors = watch_errors(page)
    answer = await page.goto(f"{console.url}/console/")
    assert answer is not None
    policy = answer.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    await expect(page.locator("html")).to_have_attribute("lang", "ko")

    # a wrong password is said so, then the right one signs in
    await page.get_by_label("이름", exact=True).fill(console.operator.name)
    await page.get_by_label("비밀번호", exact=True).fill("not the password")
    await page.get_by_role("button", name="로그인").click()
    await expect(page.locator("#signin-error")).to_have_text("이름 또는 비밀번호가 틀렸습니다.")
    await page.get_by_label("비밀번호", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="로그인").click()
    await expect(page.get_by_role("heading", name="알림 목록")).to_be_visible()

    # compose: a title past the dealer's 50 characters is refused next to its field
    await page.get_by_role("link", name="새 알림 작성").click()
    await expect(page.get_by_role("heading", name="알림 작성")).to_be_visible()
    await page.locator("#title").fill("가" * 51)
    await expect(page.locator("#title-count")).to_have_text("51 / 50자")
    await expect(page.locator("#err-title")).to_be_visible()
    await expect(page.locator("#err-title")).to_contain_text("50")
    await expect(page.locator("#title")).to_have_attribute("aria-invalid", "true")
    title = f"태풍 대비 안내 {uuid.uuid4().hex[:6]}"
    await page.locator("#title").fill(title)
    await page.locator("#body").fill("내일 오후 태풍이 지나갑니다.\n외출을 삼가세요.")
    await expect(page.locator("#err-title")).to_be_hidden()
    await expect(page.locator(".kakao-title")).to_have_text(title)

    # the audience: choosing districts with none ticked reaches nobody; one district's
    # count is the database's
    await page.get_by_label("지역·태그로 선택").check()
    await expect(page.locator("#err-audience")).to_be_visible()
    await page.get_by_label("장안구").check()
    expected = await _active_in(engine, "장안구")
    await expect(page.locator("#recipient-count")).to_have_text(f"{expected:,}")
    await expect(page.locator("#err-audience")).to_be_hidden()

    await page.get_by_role("button", name="승인 요청").click()
    await expect(page.locator("#alert-title")).to_have_text(title)
    alert_id = page.url.rsplit("/", 1)[-1]
    await expect(page.locator(".title-row .badge")).to_have_text("승인 대기")
    # the author is told it waits for someone else, and offered no approval
    await expect(page.locator("#own-alert")).to_be_visible()
    await expect(page.locator("#review-link")).to_have_count(0)

    # a second session of the operator watches the alert live while it is approved
    watcher = await korean_context(browser)
    try:
        watching = await watcher.new_page()
        await _sign_in(watching, console, console.operator)
        await watching.goto(f"{console.url}/console/#/alerts/{alert_id}")
        await expect(watching.locator("#stream-state")).to_have_text("실시간으로 갱신 중")

        await page.get_by_role("button", name="로그아웃").click()
        await expect(page.get_by_role("heading", name="로그인")).to_be_visible()
        await page.get_by_label("이름", exact=True).fill(console.approver.name)
        await page.get_by_label("비밀번호", exact=True).fill(PASSWORD)
        await page.get_by_role("button", name="로그인").click()

        # what waits for my approval lists it; the review shows it as recipients see it
        await page.goto(f"{console.url}/console/#/alerts?view=mine")
        row = page.locator(f'tr[data-id="{alert_id}"]')
        await expect(row).to_be_visible()
        await row.get_by_role("link", name="검토").click()
        await expect(page.get_by_role("heading", name="승인 검토")).to_be_visible()
        await expect(page.locator("#author")).to_have_text(console.operator.name)
        await expect(page.locator(".kakao-title")).to_have_text(title)
        await expect(page.locator("#review-recipients")).to_have_text(f"{expected:,}명")
        await page.get_by_role("button", name="승인하고 발송").click()

        await expect(page.locator("#alert-title")).to_have_text(title)
        await expect(page.locator(".title-row .badge")).to_have_text("발송 대기")
        await expect(page.locator("progress")).to_have_count(1)
        # the watcher's page moved on by itself, through the event stream
        await expect(watching.locator(".title-row .badge")).to_have_text("발송 대기")
    finally:
        await watcher.close()

    # pause and resume, each behind its confirmation
    await page.get_by_role("button", name="일시정지").click()
    await page.locator("dialog").get_by_role("button", name="일시정지").click()
    await expect(page.locator(".title-row .badge")).to_have_text("일시정지")
    await page.get_by_role("button", name="재개").click()
    await page.locator("dialog").get_by_role("button", name="재개").click()
    await expect(page.locator(".title-row .badge")).to_have_text("발송 대기")

    # the alert's audit trail and the audit page name each action and who did it
    trail = page.locator("#trail-table")
    await expect(trail.locator("tr", has_text="알림 작성")).to_contain_text(console.operator.name)
    await expect(trail.locator("tr", has_text="승인")).to_contain_text(console.approver.name)
    await page.get_by_role("link", name="감사 기록").click()
    await page.get_by_label("알림", exact=True).fill(alert_id)
    await page.get_by_role("button", name="찾기").click()
    table = page.locator("#audit-table")
    actions = ["재개", "일시정지", "승인", "알림 작성"]  # newest first
    await expect(table.locator("tbody tr td:nth-child(3)")).to_have_text(actions)
    await expect(table.locator("tbody tr td:nth-child(2)")).to_have_text(
        [console.approver.name] * 3 + [console.operator.name]
    )
    await page.get_by_label("알림", exact=True).fill("")
    await page.get_by_label("누가").fill(console.operator.name)
    await page.get_by_label("무엇을").select_option("signin")
    await page.get_by_role("button", name="찾기").click()
    await expect(table.locator("tbody tr")).to_have_count(2)  # the operator signed in twice
    assert errors == [], errors


async def test_an_author_sees_no_approve_button(
    console: Console, context: BrowserContext, browser: Browser
) -> None:
    alert_id = await _pending_alert(console, console.approver, "본인 알림 검토")
    page = await context.new_page()
    await _sign_in(page, console, console.approver)
    await page.goto(f"{console.url}/console/#/alerts/{alert_id}/review")
    await expect(page.locator("#no-decision")).to_contain_text("본인이 작성한 알림")
    await expect(page.get_by_role("button", name="승인하고 발송")).to_have_count(0)
    await page.goto(f"{console.url}/console/#/alerts/{alert_id}")
    await expect(page.locator("#own-alert")).to_be_visible()
    await expect(page.locator("#review-link")).to_have_count(0)

    # another approver is offered it, and rejects it with a reason
    other = await korean_context(browser)
    try:
        second = await other.new_page()
        await _sign_in(second, console, console.second_approver)
        await second.goto(f"{console.url}/console/#/alerts/{alert_id}/review")
        await second.get_by_role("button", name="반려").click()
        await expect(second.locator("#err-reason")).to_be_visible()
        await second.get_by_label("반려 사유", exact=True).fill("지역이 틀렸습니다")
        await second.get_by_role("button", name="반려").click()
        await expect(second.locator(".title-row .badge")).to_have_text("반려됨")
        await expect(second.locator(".notice").first).to_contain_text("지역이 틀렸습니다")
    finally:
        await other.close()


async def test_typed_markup_is_shown_as_text_and_changes_need_the_csrf_token(
    console: Console, context: BrowserContext
) -> None:
    title = "<img src=x onerror=window.pwned=1><b>태풍</b>"
    alert_id = await _pending_alert(console, console.operator, title)
    page = await context.new_page()
    errors = watch_errors(page)
    await _sign_in(page, console, console.operator)
    await page.goto(f"{console.url}/console/#/alerts/{alert_id}")
    await expect(page.locator("#alert-title")).to_have_text(title)
    assert await page.evaluate("window.pwned") is None
    await page.goto(f"{console.url}/console/#/alerts")
    await expect(page.locator(f'tr[data-id="{alert_id}"] td').first).to_contain_text(title)
    assert await page.evaluate("window.pwned") is None

    # the session's cookie alone changes nothing: a change without the token is refused
    status = await page.evaluate(
        "async (id) => (await fetch(`/v1/alerts/${id}/cancel`, {method: 'POST'})).status",
        alert_id,
    )
    assert status == 403
    await page.reload()
    await expect(page.locator(f'tr[data-id="{alert_id}"] .badge').first).to_have_text("승인 대기")

    # cancel behind its confirmation: "돌아가기" keeps it, the confirmation cancels
    await page.goto(f"{console.url}/console/#/alerts/{alert_id}")
    await page.get_by_role("button", name="발송 취소").click()
    await page.locator("dialog").get_by_role("button", name="돌아가기").click()
    await expect(page.locator("dialog")).to_have_count(0)
    await expect(page.locator(".title-row .badge")).to_have_text("승인 대기")
    await page.get_by_role("button", name="발송 취소").click()
    await page.locator("dialog").get_by_role("button", name="발송 취소").click()
    await expect(page.locator(".title-row .badge")).to_have_text("취소됨")
    await expect(page.locator("#stream-state")).to_have_text("발송이 끝났습니다.")
    assert errors == [], errors


async def test_an_admin_adds_a_person_and_a_key_and_revokes_it(
    console: Console, context: BrowserContext
) -> None:
    page = await context.new_page()
    errors = watch_errors(page)
    await _sign_in(page, console, console.admin)
    await page.get_by_role("link", name="사용자와 키").click()
    await expect(page.get_by_role("heading", name="사용자와 API 키")).to_be_visible()

    name = f"console newcomer {uuid.uuid4().hex[:8]}"
    await page.locator("#user-name").fill(name)
    await page.locator("#user-role").select_option("viewer")
    await page.locator("#user-password").fill("short")
    await page.get_by_role("button", name="사용자 만들기").click()
    await expect(page.locator("#err-password")).to_contain_text("12")
    await page.locator("#user-password").fill(PASSWORD)
    await page.get_by_role("button", name="사용자 만들기").click()
    person = page.locator(f'#users-table tr[data-user="{name}"]')
    await expect(person.locator(".state")).to_have_text("사용 중")

    await page.locator("#key-user").select_option(label=f"{name} (열람자)")
    await page.locator("#key-label").fill("상황실 화면")
    await page.get_by_role("button", name="키 발급").click()
    key = await page.locator("#new-key-value").text_content()
    assert key is not None and key.startswith("allim_")
    prefix = key.split("_")[1]
    async with httpx.AsyncClient(base_url=console.url) as http:
        works = await http.get("/v1/alerts", headers={"X-API-Key": key})
        assert works.status_code == 200
        row = page.locator(f'#keys-table tr[data-prefix="{prefix}"]')
        await row.get_by_role("button", name="폐기").click()
        await page.locator("dialog").get_by_role("button", name="폐기").click()
        await expect(row.locator(".state")).to_contain_text("폐기")
        assert (await http.get("/v1/alerts", headers={"X-API-Key": key})).status_code == 401
    assert errors == [], errors


async def _ended(engine: AsyncEngine, scene: Scene) -> None:
    """The broadcaster's last transition for the scene's alert, a minute after its start and
    past its one-second deadline."""
    async with session_factory(engine)() as session, session.begin():
        await session.execute(
            text(
                "UPDATE alerts SET status = 'completed', targeted = 6, deliver_within = 1,"
                " started_at = now() - interval '1 minute', completed_at = now() WHERE id = :id"
            ),
            {"id": scene.alert_id},
        )


def _dashed(number: str) -> str:
    """A number as people type it: 010-1234-5678."""
    return f"{number[:3]}-{number[3:7]}-{number[7:]}"


async def test_a_recipient_looked_up_and_a_failure_listed_and_resent(
    console: Console, context: BrowserContext, engine: AsyncEngine
) -> None:
    scene = await build_scene(engine)
    await _ended(engine, scene)
    page = await context.new_page()
    errors = watch_errors(page)
    await _sign_in(page, console, console.operator)
    await page.goto(f"{console.url}/console/#/alerts/{scene.alert_id}")
    await expect(page.locator("#late-badge")).to_contain_text("기한 초과")
    await expect(page.locator('#channels-table tr[data-channel="kakao"]')).to_be_visible()

    # the look-up: delivered, failed with the dealer's code and message, and a stranger
    lookup = page.get_by_label("수신자 번호")
    await lookup.fill(_dashed(scene.numbers["delivered"]))
    await page.get_by_role("button", name="조회").click()
    await expect(page.locator("#lookup-outcome")).to_have_text("전달됨")
    await expect(page.locator("#lookup-channel")).to_have_text("카카오톡")
    await lookup.fill(scene.numbers["failed"])
    await lookup.press("Enter")
    await expect(page.locator("#lookup-outcome")).to_have_text("실패")
    await expect(page.locator("#lookup-detail")).to_contain_text("3018")
    await expect(page.locator("#lookup-detail")).to_contain_text("no such KakaoTalk user")
    await lookup.fill(scene.numbers["elsewhere"])
    await lookup.press("Enter")
    await expect(page.locator("#lookup-outcome")).to_have_text("이 알림의 수신 대상이 아닙니다")

    # the failures table, filtered by code, and its CSV link
    failed = page.locator(f'#failures-table tr[data-number="{scene.numbers["failed"]}"]')
    await expect(failed.locator(".code")).to_have_text("3018")
    await page.get_by_label("사업자 코드").fill("5000")
    await page.get_by_role("button", name="적용").click()
    await expect(page.locator("#failures-state")).to_have_text("실패한 수신자가 없습니다.")
    await page.get_by_label("사업자 코드").fill("3018")
    await page.get_by_role("button", name="적용").click()
    await expect(page.locator("#failures-table tbody tr")).to_have_count(1)
    href = await page.locator("#failures-csv").get_attribute("href")
    assert href is not None and "format=csv" in href and "code=3018" in href
    exported = await page.request.get(f"{console.url}{href}")
    assert exported.headers["content-type"].startswith("text/csv")
    lines = (await exported.text()).splitlines()
    assert len(lines) == 2 and lines[1].startswith(f"{scene.numbers['failed']},failed,3018,")

    # resend behind its confirmation: a child alert to exactly the one failure, waiting
    await page.get_by_role("button", name="실패한 수신자에게 재발송").click()
    await expect(page.locator("dialog")).to_contain_text("3018")
    await page.locator("dialog").get_by_role("button", name="재발송").click()
    await expect(page.locator("#resend-recipients")).to_have_text("1명")
    await expect(page.locator("#resend-status")).to_have_text("승인 대기")
    async with httpx.AsyncClient(base_url=console.url) as http:
        listed = await http.get(
            "/v1/alerts",
            params={"parent_id": str(scene.alert_id)},
            headers={"X-API-Key": console.operator.key},
        )
    [child] = listed.json()["items"]
    assert child["relation"] == "resend" and child["author"] == console.operator.name
    await expect(page.locator(f'#children-list li[data-id="{child["id"]}"]')).to_contain_text(
        "재발송"
    )
    assert errors == [], errors


async def test_a_correction_shows_its_field_error_and_is_listed(
    console: Console, context: BrowserContext, engine: AsyncEngine
) -> None:
    scene = await build_scene(engine)
    page = await context.new_page()
    errors = watch_errors(page)
    await _sign_in(page, console, console.operator)
    await page.goto(f"{console.url}/console/#/alerts/{scene.alert_id}")
    # while it is sent, who it reached is not final: no form yet
    await expect(page.locator("#followup-later")).to_be_visible()
    await expect(page.locator("#followup-form")).to_have_count(0)
    await _ended(engine, scene)
    await page.reload()

    # the mark makes a 48-character title too long: said under the title
    await page.get_by_label("본문", exact=True).fill("임시 노선은 12번이 아니라 21번입니다.")
    await page.locator("#followup-title").fill("가" * 48)
    await expect(page.locator("#followup-title-count")).to_contain_text("53 / 50자")
    await page.get_by_role("button", name="후속 알림 승인 요청").click()
    await expect(page.locator("#err-title")).to_contain_text("50")
    await expect(page.locator("#followup-title")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#followup-made")).to_have_count(0)

    await page.locator("#followup-title").fill("임시 노선 안내")
    await page.get_by_role("button", name="후속 알림 승인 요청").click()
    await expect(page.locator("#err-title")).to_be_hidden()
    # to those the parent reached: the delivered one and the one a retry reached
    await expect(page.locator("#followup-made")).to_contain_text("수신자 2명")
    await expect(page.locator("#children-list li")).to_contain_text(["[정정] 임시 노선 안내"])
    await page.locator("#children-list li a").click()
    await expect(page.locator("#alert-title")).to_have_text("[정정] 임시 노선 안내")
    await expect(page.locator("#parent-link")).to_contain_text("정정")
    assert errors == [], errors


async def test_compose_previews_the_sms_and_lms_and_their_switches(
    console: Console, context: BrowserContext
) -> None:
    page = await context.new_page()
    errors = watch_errors(page)
    await _sign_in(page, console, console.operator)
    await page.goto(f"{console.url}/console/#/alerts/new")
    # title, body and the tracked link within 90 bytes: an SMS
    await page.locator("#title").fill("단수")
    await page.locator("#body").fill("내일")
    await expect(page.locator("#sms-kind")).to_have_text("SMS")
    await expect(page.locator("#sms-bytes")).to_contain_text("/ 90바이트")
    await expect(page.locator("#fallback-enabled")).to_be_checked()
    # past 90 bytes it is an LMS, with a subject
    await page.locator("#body").fill(
        "내일 오전 9시부터 오후 6시까지 장안구 전역에 단수가 예정되어 있습니다. " * 3
    )
    await expect(page.locator("#sms-kind")).to_have_text("LMS")
    await expect(page.locator("#sms-subject")).to_have_text("단수")
    # an emoji is refused for SMS next to the switches, unless replaced
    await page.locator("#body").fill("내일 🚰")
    await expect(page.locator("#err-fallback")).to_be_visible()
    await page.get_by_label("이모지 등 바꾸기").check()
    await expect(page.locator("#err-fallback")).to_be_hidden()
    await expect(page.locator("#sms-text")).to_contain_text("내일 ?")
    # switched off, there is no SMS/LMS
    await page.get_by_label("카카오톡으로 받지 못한 사람에게 문자로 보내기").uncheck()
    await expect(page.locator("#sms-none")).to_be_visible()
    assert errors == [], errors
