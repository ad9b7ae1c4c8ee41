"""The ops console in a real headless Chromium (Debian's, driven by Playwright): login and its
cookie, the security headers, what each role sees, forged posts refused with nothing changed,
and the actions an operator takes from the pages.

Screenshots of every page go to docs/screenshots/ when CHAINGATE_SCREENSHOTS=1 (so that a plain
test run never dirties the tree).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, async_playwright

from chaingate.settings import PROJECT_ROOT
from console_support import ALICE, MAKER, VIEWER, Console, seed, serve_console

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


@pytest.fixture(scope="module")
async def console(pg_admin_dsn: str) -> AsyncIterator[Console]:
    async with serve_console(pg_admin_dsn) as served:
        served.ids.update(await seed(served.db))
        yield served


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def login(browser: Browser, console: Console, token: str) -> Page:
    """A fresh browser context (its own cookies) logged in with ``token``."""
    context = await browser.new_context(viewport=LAPTOP)
    context.set_default_timeout(10_000)
    page = await context.new_page()
    await page.goto(f"{console.url}/ops/login")
    await page.fill("input[name=token]", token)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/ops/networks")
    return page


async def shot(page: Page, name: str) -> None:
    if os.environ.get("CHAINGATE_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def csrf_of(page: Page) -> str:
    value = await page.locator("form.who input[name=csrf]").get_attribute("value")
    assert value
    return value


async def test_login_sets_a_safe_session_cookie_and_every_page_its_security_headers(
    browser: Browser, console: Console
) -> None:
    context = await browser.new_context(viewport=LAPTOP)
    page = await context.new_page()
    await page.goto(f"{console.url}/ops/alerts")
    assert page.url.endswith("/ops/login")  # no session: the login form, nothing else
    await shot(page, "login")
    await page.fill("input[name=token]", "not-a-token-of-anyone-0001")
    await page.click("button[type=submit]")
    assert await page.locator(".flash.error").inner_text() == "Unknown token, or not an ops token."
    await context.close()

    page = await login(browser, console, VIEWER)
    [cookie] = [c for c in await page.context.cookies() if c["name"] == "chaingate_console"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ops"
    assert not cookie["secure"]  # plain http here; Secure is set when served over TLS
    assert VIEWER not in cookie["value"]  # encrypted: neither the token nor the principal shows
    assert "vic" not in cookie["value"]
    for path in ("networks", "deposits", "alerts", "outbox", "audit", "login"):
        response = await page.goto(f"{console.url}/ops/{path}")
        assert response is not None and response.ok
        headers = response.headers
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"

    await page.goto(f"{console.url}/ops/networks")
    await page.click("form.who button")
    await page.wait_for_url("**/ops/login")
    await page.goto(f"{console.url}/ops/audit")
    assert page.url.endswith("/ops/login")
    await page.context.close()


async def test_a_service_token_cannot_log_in(browser: Browser, console: Console) -> None:
    from harness import SERVICE_TOKEN  # roles service + viewer: a viewer may look

    page = await login(browser, console, SERVICE_TOKEN)
    assert await page.locator(".principal").inner_text() == "ledger-service"
    await page.context.close()


async def test_viewer_sees_no_action_button_and_forged_posts_change_nothing(
    browser: Browser, console: Console
) -> None:
    alert_id, parked_id = console.ids["mismatch"], console.ids["parked"]
    audit_before = await console.db.fetchval("SELECT count(*) FROM audit_log")
    viewer = await login(browser, console, VIEWER)
    for path in ("alerts", "outbox", "deposits", "networks", "audit"):
        await viewer.goto(f"{console.url}/ops/{path}")
        assert (
            await viewer.locator(
                "main button:not([type=submit]):visible, main form[method=post]"
            ).count()
            == 0
        )
    await viewer.goto(f"{console.url}/ops/alerts")
    # It does see the alert and what to do about it, just no button to act with.
    assert "network_mismatch" in await viewer.locator(f"#alert-{alert_id}").inner_text()
    csrf = await csrf_of(viewer)
    # The viewer's own session and a valid CSRF token: refused for the missing role.
    forged = await viewer.request.post(
        f"{console.url}/ops/alerts/{alert_id}/ack", form={"csrf": csrf, "note": "x"}
    )
    assert forged.status == 403 and "Nothing was changed" in await forged.text()
    forged = await viewer.request.post(
        f"{console.url}/ops/outbox/{parked_id}/resend", form={"csrf": csrf, "note": "x"}
    )
    assert forged.status == 403

    maker = await login(browser, console, MAKER)
    for form in ({"note": "no token"}, {"csrf": "wrong", "note": "x"}, {"csrf": csrf, "note": "x"}):
        # missing, wrong, and another session's token: all refused before any action runs
        refused = await maker.request.post(
            f"{console.url}/ops/alerts/{alert_id}/ack", form=form, max_redirects=0
        )
        assert refused.status == 403, form
    still = await console.db.fetchrow("SELECT acknowledged_at FROM alerts WHERE id = $1", alert_id)
    assert still["acknowledged_at"] is None
    parked = await console.db.fetchval(
        "SELECT parked_at IS NOT NULL FROM ledger_outbox WHERE id = $1", parked_id
    )
    assert parked
    # Only the two logins were recorded; no action reached the audit log.
    new = await console.db.fetch("SELECT action FROM audit_log ORDER BY id OFFSET $1", audit_before)
    assert [r["action"] for r in new] == ["console.login", "console.login"]
    await viewer.context.close()
    await maker.context.close()


async def test_an_operator_acknowledges_with_a_note_and_resends_a_parked_row(
    browser: Browser, console: Console
) -> None:
    alert_id, parked_id = console.ids["rejected"], console.ids["parked"]
    page = await login(browser, console, ALICE)
    await page.goto(f"{console.url}/ops/alerts")
    await shot(page, "alerts")
    card = page.locator(f"#alert-{alert_id}")
    await card.locator("input[name=note]").fill("reversal delivered; ledger team agreed")
    await card.get_by_role("button", name="Acknowledge").click()
    await page.wait_for_url("**/ops/alerts")
    assert await page.locator(".flash.ok").inner_text() == f"alert {alert_id} acknowledged"
    row = await console.db.fetchrow(
        "SELECT acknowledged_by, acknowledged_note FROM alerts WHERE id = $1", alert_id
    )
    assert (row["acknowledged_by"], row["acknowledged_note"]) == (
        "alice",
        "reversal delivered; ledger team agreed",
    )

    await page.goto(f"{console.url}/ops/outbox")
    await shot(page, "outbox")
    assert "duplicate_deposit" in await page.locator(f"#outbox-{parked_id}").inner_text()
    await page.locator(f"#outbox-{parked_id} input[name=note]").fill("first credit reversed")
    await page.locator(f"#outbox-{parked_id} button").click()
    await page.wait_for_url("**/ops/outbox")
    assert "due again" in await page.locator(".flash.ok").inner_text()
    assert await console.db.fetchval(
        "SELECT next_attempt_at <= now() FROM ledger_outbox WHERE id = $1", parked_id
    )

    await page.goto(f"{console.url}/ops/audit?actor=alice")
    await shot(page, "audit")
    actions = await page.locator("tbody tr td:nth-child(4)").all_inner_texts()
    assert actions == ["outbox.resend", "alert.ack", "console.login"]
    await page.goto(f"{console.url}/ops/audit?action=alert.ack")
    assert await page.locator("tbody tr").count() == 1
    await page.goto(f"{console.url}/ops/audit?since=yesterday")
    assert "ISO-8601" in await page.locator(".flash.error").inner_text()
    await page.context.close()


async def test_deposits_filter_paginate_and_show_amounts_with_their_decimals(
    browser: Browser, console: Console
) -> None:
    await console.db.executemany(
        """INSERT INTO deposits (network, txid, position, asset, decimals, to_key, user_id, amount,
               status, confirmations, required_confirmations)
           VALUES ('tron-devnet', $1, 'log:0', 'USDT', 6, 'T', 'bulk', $2, 'confirming', 1, 19)""",
        [(f"{n:064x}", 1_000_000 + n) for n in range(55)],
    )
    page = await login(browser, console, VIEWER)
    await page.goto(f"{console.url}/ops/deposits?network=ethereum-devnet")
    await shot(page, "deposits")
    rows = page.locator("tbody tr")
    assert await rows.count() == 3
    first_eth = rows.filter(has_text="olga").filter(has_text="credited")
    assert (await first_eth.locator("td.amt").inner_text()).replace("\n", "") == (
        "1.250000000000000000"
    )
    assert "12 / 12" in await first_eth.inner_text()
    assert "delivered" in await first_eth.inner_text()
    await page.goto(f"{console.url}/ops/deposits?status=confirming&network=ethereum-devnet")
    assert "5 / 12" in await page.locator("tbody").inner_text()

    await page.goto(f"{console.url}/ops/deposits?user=bulk")
    assert await rows.count() == 50
    await page.get_by_role("link", name="Older →").click()
    assert await rows.count() == 5
    assert "1.000004" in await rows.first.inner_text()  # the oldest five, still in order
    await page.context.close()


async def test_every_page_fits_a_laptop_screen(browser: Browser, console: Console) -> None:
    page = await login(browser, console, MAKER)
    for path in ("networks", "deposits", "alerts?state=all", "outbox", "audit",
                 "runbook/ledger_rejected"):  # fmt: skip
        await page.goto(f"{console.url}/ops/{path}")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= LAPTOP["width"], (path, width)
    await page.goto(f"{console.url}/ops/networks")
    await shot(page, "networks")
    await page.context.close()
