"""Debian's Chromium, headless, driven by Playwright, and a login to the ops console: shared by
the console's browser tests (tests/test_console.py) and the demo's screenshots
(tests/test_screenshots.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from playwright.async_api import Browser, Page, async_playwright

from chaingate.settings import PROJECT_ROOT

# `playwright install` would download a browser, which cannot work here: Debian's, by path.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LAPTOP = {"width": 1366, "height": 900}
SHOTS = PROJECT_ROOT / "docs" / "screenshots"


class Served(Protocol):
    url: str  # the gateway's base URL; the console is under /ops


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def login(browser: Browser, console: Served, token: str) -> Page:
    """A fresh browser context (its own cookies) logged in with ``token``."""
    context = await browser.new_context(viewport=LAPTOP)
    context.set_default_timeout(10_000)
    page = await context.new_page()
    await page.goto(f"{console.url}/ops/login")
    await page.fill("input[name=token]", token)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/ops/networks")
    return page
