"""Debian's Chromium driven by Playwright, for the console's browser tests: the fixtures that
find and launch it, a page's script errors, and the screenshots of each screen.

Playwright's own browser downloads are not used: deploy/local/chromium/chromium.sh installs
Debian's `chromium` when it is missing and prints its path. Screenshots go to
`.local/console-screens/` (or ALLIM_CONSOLE_SCREENS), one PNG per screen, rewritten by each run.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_SCRIPT = ROOT / "deploy" / "local" / "chromium" / "chromium.sh"
SCREENS = Path(os.environ.get("ALLIM_CONSOLE_SCREENS", ROOT / ".local" / "console-screens"))
# a laptop's window: what the README's screenshots show
VIEWPORT = {"width": 1100, "height": 760}


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of Debian's Chromium, which deploy/local/chromium/chromium.sh installs when
    it is missing (Playwright's own browser downloads are not used)."""
    found = subprocess.run([str(CHROMIUM_SCRIPT)], check=True, capture_output=True, text=True)
    return found.stdout.strip()


@pytest.fixture(scope="module")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    """Chromium, headless, driven by Playwright."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium)
        yield launched
        await launched.close()


async def korean_context(browser: Browser) -> BrowserContext:
    """A fresh browser profile (no cookies) in Korean, on Seoul's time, a laptop's window."""
    return await browser.new_context(locale="ko-KR", timezone_id="Asia/Seoul", viewport=VIEWPORT)  # type: ignore[arg-type]


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile for one test."""
    ctx = await korean_context(browser)
    yield ctx
    await ctx.close()


def watch_errors(page: Page) -> list[str]:
    """What goes wrong in the page's scripts: uncaught errors and logged errors (an answer
    the console expects, such as a 401 or a 422, is logged by the browser itself as a
    resource that failed to load, and is left out)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def logged(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    page.on("console", logged)
    return errors


async def screenshot(page: Page, screen: str) -> Path:
    """Write what `page` shows now to SCREENS/<screen>.png (Playwright makes the folder);
    its path."""
    path = SCREENS / f"{screen}.png"
    await page.screenshot(path=str(path), animations="disabled", caret="hide")
    return path
