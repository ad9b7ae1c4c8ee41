"""The ops console's screenshots in docs/screenshots/, taken from the demo's own data: the demo
runs on the test devnet (free ports, never `make demo`'s), and while its gateway still runs,
headless Chromium logs in with the token the demo prints and saves every page.

Only with CHAINGATE_SCREENSHOTS=1 (`make screenshots`): a plain test run never dirties the tree.
"""

from __future__ import annotations

import io
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Page

from browser_support import LAPTOP, SHOTS, chromium, login
from chaingate.demo import run_demo
from chaingate.demo.runner import APPROVERS
from chaingate.demo.story import story_for
from chaingate.devnet import postgres
from chaingate.devnet.manager import DevnetState

pytestmark = pytest.mark.skipif(
    os.environ.get("CHAINGATE_SCREENSHOTS") != "1",
    reason="writes docs/screenshots/: set CHAINGATE_SCREENSHOTS=1 (make screenshots)",
)


PAGES = ("login", "networks", "deposits", "alerts", "withdrawals", "batches", "batch-confirmed",
         "outbox", "audit")  # fmt: skip


@dataclass(frozen=True)
class Gateway:
    url: str


async def _save(page: Page, name: str, path: str, *must_show: str) -> None:
    response = await page.goto(path)
    assert response is not None and response.ok, (path, response and response.status)
    text = await page.locator("main").inner_text()
    for wanted in must_show:
        assert wanted in text, (path, wanted, text[:2000])
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= LAPTOP["width"], (path, width)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def _screenshots(console_url: str, token: str) -> None:
    gateway = Gateway(console_url.removesuffix("/ops/"))
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with chromium() as browser:
        context = await browser.new_context(viewport=LAPTOP)
        anonymous = await context.new_page()
        await anonymous.goto(f"{gateway.url}/ops/login")
        await anonymous.screenshot(path=str(SHOTS / "login.png"), full_page=True)
        await context.close()

        page = await login(browser, gateway, token)
        ops = f"{gateway.url}/ops"
        await _save(page, "networks", f"{ops}/networks", "ethereum-devnet", "tron-devnet")
        await _save(page, "deposits", f"{ops}/deposits", "credited", "alice")
        await _save(page, "alerts", f"{ops}/alerts", "network_mismatch")
        await _save(page, "withdrawals", f"{ops}/withdrawals", "Batches", "completed")
        # The batches table on its own, as the README shows it.
        batches = page.locator("table", has=page.locator("a[href^='/ops/batches/']"))
        await batches.screenshot(path=str(SHOTS / "batches.png"))
        hrefs = await batches.locator("a[href^='/ops/batches/']").evaluate_all(
            "links => links.map(a => a.getAttribute('href'))"
        )
        first = min({int(re.sub(r"\D", "", h)) for h in hrefs})  # the ETH batch, made first
        await _save(page, "batch-confirmed", f"{ops}/batches/{first}", "completed",
                    "confirmed", "2 of 2 needed", *APPROVERS)  # fmt: skip
        await _save(page, "outbox", f"{ops}/outbox")
        await _save(page, "audit", f"{ops}/audit", "console.login")
        await page.context.close()


async def test_the_console_screenshots_come_from_the_demo(
    devnet: DevnetState, pg_admin_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"cg_shots_{uuid.uuid4().hex[:10]}"
    # The test devnet has no database of its own: the demo uses the test server's.
    monkeypatch.setenv("CHAINGATE_DATABASE_URL", pg_admin_dsn)
    out = io.StringIO()
    started = time.time()
    try:
        code = await run_demo(
            state=devnet, database_prefix=prefix, timeout=90, tick=0.3,
            story=story_for(out, once=True), log_file=tmp_path / "demo.log",
            on_console=_screenshots,
        )  # fmt: skip
    finally:
        for name in (prefix, f"{prefix}_ledger"):
            await postgres.drop_database(postgres.server_of(pg_admin_dsn), name)
    assert code == 0, out.getvalue()
    # The demo called back while its gateway ran: every page was saved by this run.
    stale = [p for p in PAGES if not (SHOTS / f"{p}.png").exists()
             or (SHOTS / f"{p}.png").stat().st_mtime < started]  # fmt: skip
    assert not stale, stale
