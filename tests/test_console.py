"""The ops console in a real headless Chromium (Debian's, driven by Playwright): login and its
cookie, the security headers, what each role sees, forged posts refused with nothing changed,
and the actions an operator takes from the pages.

The screenshots in docs/screenshots/ come from the demo's data instead: tests/test_screenshots.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from browser_support import LAPTOP, chromium, login
from chaingate.settings import Principal
from console_support import (
    ALICE,
    BOB,
    CONSOLE_TOKENS,
    MAKER,
    VIEWER,
    Console,
    request_withdrawals,
    restarted,
    running_signer,
    seed,
    serve_console,
    stand_in_for_ledger_and_planner,
)


@pytest.fixture(scope="module")
async def console(pg_admin_dsn: str) -> AsyncIterator[Console]:
    async with serve_console(pg_admin_dsn) as served:
        served.ids.update(await seed(served.db))
        yield served


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


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
    assert "duplicate_deposit" in await page.locator(f"#outbox-{parked_id}").inner_text()
    await page.locator(f"#outbox-{parked_id} input[name=note]").fill("first credit reversed")
    await page.locator(f"#outbox-{parked_id} button").click()
    await page.wait_for_url("**/ops/outbox")
    assert "due again" in await page.locator(".flash.ok").inner_text()
    assert await console.db.fetchval(
        "SELECT next_attempt_at <= now() FROM ledger_outbox WHERE id = $1", parked_id
    )

    await page.goto(f"{console.url}/ops/audit?actor=alice")
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
    for path in ("networks", "deposits", "alerts?state=all", "outbox", "audit", "withdrawals",
                 "runbook/ledger_rejected"):  # fmt: skip
        await page.goto(f"{console.url}/ops/{path}")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= LAPTOP["width"], (path, width)
    await page.goto(f"{console.url}/ops/networks")
    eth = await page.locator("tbody tr", has_text="ethereum-devnet").inner_text()
    assert "1,293" in eth and "1,290" in eth and "3 blk" in eth  # head, cursor, lag
    assert "gw-1" in eth and "epoch 3" in eth  # the watcher's leader and its fencing epoch
    assert "primary · chain ✓" in eth  # each endpoint's health and chain check
    bsc = await page.locator("#network-bsc-devnet").inner_text()
    assert "public-rpc · WRONG CHAIN" in bsc
    backlog = await page.locator("#outbox-backlog").inner_text()
    assert "credit" in backlog and "ago" in backlog  # the outbox backlog and its oldest age
    assert await page.locator("meta[http-equiv=refresh]").count() == 1  # refreshes itself
    await page.context.close()


async def test_maker_batches_two_approvers_approve_and_the_batch_goes_to_signing(
    browser: Browser, console: Console, tmp_path: Path
) -> None:
    withdrawal_ids = await request_withdrawals(console.url, 3, "console-batch")
    maker = await login(browser, console, MAKER)
    await maker.goto(f"{console.url}/ops/withdrawals")
    row = maker.locator("#pending-ethereum-devnet-ETH")
    assert "1.500000000000000000" in (await row.inner_text()).replace("\n", "")
    await row.get_by_role("button", name="Create batch").click()
    await maker.wait_for_url("**/ops/batches/*")
    batch_id = int(maker.url.rsplit("/", 1)[1])
    assert "created with 3 output(s)" in await maker.locator(".flash.ok").inner_text()
    content_hash = await maker.locator("#content-hash").inner_text()
    assert await maker.locator("#approve, #reject").count() == 0  # a maker only makes
    outputs = await maker.locator("table.grid tbody tr").all_inner_texts()
    assert len(outputs) == 3 and all("batched" in o for o in outputs)
    await maker.context.close()

    alice = await login(browser, console, ALICE)
    await alice.goto(f"{console.url}/ops/batches/{batch_id}")
    assert await alice.locator("#content-hash").inner_text() == content_hash
    await alice.fill("#approve input[name=confirm]", content_hash[:8])
    await alice.click("#approve button")
    await alice.wait_for_url(f"**/ops/batches/{batch_id}")
    assert "approved (1/2); status pending_approval" in await alice.locator(".flash").inner_text()
    assert await alice.locator("#approve").count() == 0  # once per approver
    await alice.context.close()

    bob = await login(browser, console, BOB)
    await bob.goto(f"{console.url}/ops/batches/{batch_id}")
    # The page he reviewed showed another hash than the batch's (stale): refused, on the page.
    stale = "ab" * 32
    await bob.locator("#approve input[name=content_hash]").evaluate(
        "(el, value) => { el.value = value; }", stale
    )
    await bob.fill("#approve input[name=confirm]", stale[:8])
    await bob.click("#approve button")
    await bob.wait_for_url(f"**/ops/batches/{batch_id}")
    assert "review the batch again" in await bob.locator(".flash.error").inner_text()
    assert (
        await console.db.fetchval("SELECT count(*) FROM approvals WHERE batch_id = $1", batch_id)
        == 1
    )
    # A confirmation that does not match the hash shown is refused too.
    await bob.fill("#approve input[name=confirm]", "00000000")
    await bob.click("#approve button")
    assert "first 8 characters" in await bob.locator(".flash.error").inner_text()

    await bob.fill("#approve input[name=confirm]", content_hash[:8])
    await bob.click("#approve button")
    await bob.wait_for_url(f"**/ops/batches/{batch_id}")
    assert "approved (2/2); status approved" in await bob.locator(".flash.ok").inner_text()
    assert await bob.locator("#batch-status").inner_text() == "approved"
    assert "queued for signing" in await bob.locator("#signer-job").inner_text()
    assert await bob.locator("#batch-stage").inner_text() == "signing"
    assert await bob.locator("#approve, #reject").count() == 0
    assert (
        await console.db.fetchval("SELECT count(*) FROM signer_jobs WHERE batch_id = $1", batch_id)
        == 1
    )

    # The real signer process (devnet hot key) takes it from there; the page follows.
    await stand_in_for_ledger_and_planner(console.db, batch_id)
    async with running_signer(console, tmp_path) as signer_log:
        deadline = asyncio.get_running_loop().time() + 60
        while "signed" not in await bob.locator("#signer-job").inner_text():
            assert asyncio.get_running_loop().time() < deadline, signer_log.read_text()[-3000:]
            await asyncio.sleep(0.3)
            await bob.reload()
    assert await bob.locator("#batch-stage").inner_text() == "signed"
    # A signed transaction per output, nonces 0, 1, 2; the broadcaster sends them next.
    txs = await bob.locator("#transactions tbody tr").all_inner_texts()
    assert len(txs) == 3 and all("signed" in t and "0x" in t for t in txs), txs
    assert [t.split("\t")[1] for t in txs] == ["0", "1", "2"]
    width = await bob.evaluate("document.documentElement.scrollWidth")
    assert width <= LAPTOP["width"], width  # the fullest batch page fits a laptop too
    await bob.goto(f"{console.url}/ops/withdrawals")
    assert "2 / 2" in await bob.locator("tbody tr", has_text=content_hash[:16]).inner_text()
    await bob.context.close()
    statuses = await console.db.fetch(
        "SELECT status FROM withdrawals WHERE id = ANY($1::bigint[])", withdrawal_ids
    )
    # The withdrawals stay approved until the broadcaster sends their transactions.
    assert {r["status"] for r in statuses} == {"approved"}
    audit = await console.db.fetch(
        "SELECT actor, action FROM audit_log WHERE subject = $1 ORDER BY id", f"batch:{batch_id}"
    )
    assert [(r["actor"], r["action"]) for r in audit] == [
        ("mara", "batch.create"),
        ("alice", "batch.approve"),
        ("bob", "batch.approve"),
        ("bob", "batch.approved"),
        ("bob", "batch.quorum"),
    ]


async def test_viewer_and_maker_cannot_approve_or_reject_by_forged_posts(
    browser: Browser, console: Console
) -> None:
    await request_withdrawals(console.url, 2, "console-forged")
    maker = await login(browser, console, MAKER)
    await maker.goto(f"{console.url}/ops/withdrawals")
    row = maker.locator("#pending-ethereum-devnet-ETH")
    await row.get_by_role("button", name="Create batch").click()
    await maker.wait_for_url("**/ops/batches/*")
    batch_id = int(maker.url.rsplit("/", 1)[1])
    content_hash = await maker.locator("#content-hash").inner_text()
    viewer = await login(browser, console, VIEWER)
    await viewer.goto(f"{console.url}/ops/batches/{batch_id}")
    assert await viewer.locator("main form").count() == 0
    await viewer.goto(f"{console.url}/ops/withdrawals")
    assert await viewer.locator("main form[method=post]").count() == 0
    for page in (viewer, maker):
        csrf = await csrf_of(page)
        approve = await page.request.post(
            f"{console.url}/ops/batches/{batch_id}/approve",
            form={"csrf": csrf, "content_hash": content_hash, "confirm": content_hash[:8]},
        )
        reject = await page.request.post(
            f"{console.url}/ops/batches/{batch_id}/reject",
            form={"csrf": csrf, "reason": "forged", "then": "fail"},
        )
        assert (approve.status, reject.status) == (403, 403)
    made = await viewer.request.post(
        f"{console.url}/ops/batches",
        form={"csrf": await csrf_of(viewer), "network": "ethereum-devnet", "asset": "ETH"},
    )
    assert made.status == 403
    assert await console.db.fetchval("SELECT status FROM batches WHERE id = $1", batch_id) == (
        "pending_approval"
    )
    assert (
        await console.db.fetchval("SELECT count(*) FROM approvals WHERE batch_id = $1", batch_id)
        == 0
    )

    alice = await login(browser, console, ALICE)
    await alice.goto(f"{console.url}/ops/batches/{batch_id}")
    await alice.fill("#reject input[name=reason]", "destination not on the allowlist")
    await alice.check("#reject input[value=release]")
    await alice.click("#reject button")
    await alice.wait_for_url(f"**/ops/batches/{batch_id}")
    assert await alice.locator("#batch-status").inner_text() == "rejected"
    assert "destination not on the allowlist" in await alice.locator("main").inner_text()
    for page in (viewer, maker, alice):
        await page.context.close()


async def test_an_approved_batch_the_signer_refused_can_be_rejected_from_its_page(
    browser: Browser, console: Console
) -> None:
    await request_withdrawals(console.url, 1, "console-refused")
    maker = await login(browser, console, MAKER)
    await maker.goto(f"{console.url}/ops/withdrawals")
    await maker.locator("#pending-ethereum-devnet-ETH").get_by_role("button").click()
    await maker.wait_for_url("**/ops/batches/*")
    batch_id = int(maker.url.rsplit("/", 1)[1])
    content_hash = await maker.locator("#content-hash").inner_text()
    await maker.context.close()
    for token in (ALICE, BOB):
        page = await login(browser, console, token)
        await page.goto(f"{console.url}/ops/batches/{batch_id}")
        await page.fill("#approve input[name=confirm]", content_hash[:8])
        await page.click("#approve button")
        await page.wait_for_url(f"**/ops/batches/{batch_id}")
        if token == ALICE:
            await page.context.close()
    assert await page.locator("#reject").count() == 0  # approved: in the signer's hands
    # The signer refuses it (parks its job): now an approver may reject it.
    await console.db.execute(
        "UPDATE signer_jobs SET parked_at = now(), next_attempt_at = 'infinity',"
        " last_error = 'destination edited' WHERE batch_id = $1",
        batch_id,
    )
    await page.reload()
    assert "refused: destination edited" in await page.locator("#signer-job").inner_text()
    await page.fill("#reject input[name=reason]", "the signer refused it")
    await page.check("#reject input[value=fail]")
    await page.click("#reject button")
    await page.wait_for_url(f"**/ops/batches/{batch_id}")
    assert await page.locator("#batch-status").inner_text() == "rejected"
    await page.context.close()


# --- attacks on the session, the forms and the pages --------------------------------------


async def test_logout_ends_the_session_for_every_copy_of_the_cookie(
    browser: Browser, console: Console
) -> None:
    page = await login(browser, console, ALICE)
    copied = await page.context.cookies()
    await page.click("form.who button")
    await page.wait_for_url("**/ops/login")
    # The cookie copied before logout (a proxy log, a shared screen) is void on the server.
    thief = await browser.new_context(viewport=LAPTOP)
    await thief.add_cookies(copied)  # type: ignore[arg-type]
    stolen = await thief.new_page()
    await stolen.goto(f"{console.url}/ops/alerts")
    assert stolen.url.endswith("/ops/login")
    response = await stolen.request.post(
        f"{console.url}/ops/alerts/{console.ids['mismatch']}/ack",
        form={"csrf": "x", "note": "replayed"},
        max_redirects=0,
    )
    assert response.status in (303, 403)
    ended = await console.db.fetchval(
        "SELECT count(*) FROM console_sessions WHERE principal = 'alice' AND ended_at IS NOT NULL"
    )
    assert ended >= 1
    assert await console.db.fetchval(
        "SELECT count(*) FROM audit_log WHERE actor = 'alice' AND action = 'console.logout'"
    )
    await thief.close()
    await page.context.close()


async def test_login_rotates_the_session_refuses_a_forged_login_and_ignores_next(
    browser: Browser, console: Console
) -> None:
    context = await browser.new_context(viewport=LAPTOP)
    page = await context.new_page()
    await page.goto(f"{console.url}/ops/login?next=https://evil.example/phish")
    before = {c["name"]: c["value"] for c in await context.cookies()}
    # Login CSRF: a login posted from elsewhere (no CSRF token of this browser) is refused.
    forged = await page.request.post(
        f"{console.url}/ops/login", form={"token": VIEWER}, max_redirects=0
    )
    assert forged.status == 403
    await page.fill("input[name=token]", VIEWER)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/ops/networks")  # never the next= of the link
    after = {c["name"]: c["value"] for c in await context.cookies()}
    assert after["chaingate_console"] != before.get("chaingate_console")
    # The cookie fixed before login (say, planted by an attacker) did not become a session.
    fixed = await browser.new_context(viewport=LAPTOP)
    await fixed.add_cookies(
        [{"name": "chaingate_console", "value": before["chaingate_console"],
          "url": f"{console.url}/ops/"}]
    )  # fmt: skip
    planted = await fixed.new_page()
    await planted.goto(f"{console.url}/ops/networks")
    assert planted.url.endswith("/ops/login")
    await fixed.close()
    await context.close()


async def test_hostile_chain_data_and_query_strings_are_shown_as_text(
    browser: Browser, console: Console
) -> None:
    # A token's symbol, an alert's message and a txid are whatever a chain (or a lying
    # endpoint) said: each carries markup that must reach the page as text only.
    evil = '<img src=x id=pwn onerror="window.pwned=1"><script>window.pwned=2</script>'
    alert_id = await console.db.fetchval(
        """INSERT INTO alerts (kind, severity, network, asset, txid, user_id, message,
               dedup_key, details)
           VALUES ('unknown_token', 'warning', 'ethereum-devnet', $1, $2, $1, $1,
                   'xss:1', '{}') RETURNING id""",
        evil,
        '0x"><script>window.pwned=3</script>',
    )
    await console.db.execute(
        """INSERT INTO deposits (network, txid, position, asset, decimals, to_key, user_id,
               amount, status, reason, confirmations, required_confirmations)
           VALUES ('ethereum-devnet', $1, 'log:9', $2, 18, '0xto', $2, 5, 'rejected', $2, 0, 0)""",
        '0x"><script>window.pwned=4</script>',
        evil,
    )
    page = await login(browser, console, ALICE)
    for path in (
        f"alerts?state=all#alert-{alert_id}",
        "deposits?network=ethereum-devnet",
        'deposits?user="><script>window.pwned=5</script>&txid=<img src=x id=pwn>',
        "audit?actor=<script>window.pwned=6</script>",
        "runbook/<script>window.pwned=7</script>",
    ):
        response = await page.goto(f"{console.url}/ops/{path}")
        assert response is not None and response.status < 500, path
        assert await page.evaluate("window.pwned") is None, path
        assert await page.locator("#pwn, main script").count() == 0, path
    await page.goto(f"{console.url}/ops/alerts?state=all")
    assert evil in await page.locator(f"#alert-{alert_id}").inner_text()
    await page.goto(f"{console.url}/ops/deposits?network=ethereum-devnet")
    link = page.locator("tbody tr", has_text="log:9").locator("a")
    assert (await link.get_attribute("href") or "").startswith("/ops/deposits?txid=0x%22%3E")
    await page.context.close()


async def test_get_never_acts_and_long_filters_are_refused_cleanly(
    browser: Browser, console: Console
) -> None:
    alert_id = console.ids["mismatch"]
    audit_before = await console.db.fetchval("SELECT count(*) FROM audit_log")
    page = await login(browser, console, ALICE)
    for path in (
        f"alerts/{alert_id}/ack?note=x",
        f"alerts/{alert_id}/redeliver",
        f"outbox/{console.ids['parked']}/resend?note=x",
        "batches?network=ethereum-devnet&asset=ETH",
        "batches/1/approve",
        "batches/1/reject?reason=x&then=fail",
        "logout",
        "no-such-page",
    ):
        response = await page.request.get(f"{console.url}/ops/{path}", max_redirects=0)
        assert response.status == (404 if path == "no-such-page" else 405), (path, response.status)
        assert response.headers.get("x-frame-options") == "DENY", (path, response.headers)
    assert await console.db.fetchval(
        "SELECT acknowledged_at IS NULL FROM alerts WHERE id = $1", alert_id
    )
    # Still logged in (GET /ops/logout did nothing), and no action was recorded.
    await page.goto(f"{console.url}/ops/networks")
    assert page.url.endswith("/ops/networks")
    new = await console.db.fetch("SELECT action FROM audit_log ORDER BY id OFFSET $1", audit_before)
    assert [r["action"] for r in new] == ["console.login"]

    for path in ("deposits?user=", "deposits?txid=", "audit?actor=", "audit?action="):
        response = await page.goto(f"{console.url}/ops/{path}{'x' * 4000}")
        assert response is not None and response.status == 200, path
        assert "too long" in await page.locator(".flash.error").inner_text(), path
    await page.context.close()


async def test_a_token_removed_or_its_role_changed_applies_to_open_sessions(
    browser: Browser, console: Console
) -> None:
    viewer = await login(browser, console, VIEWER)
    maker = await login(browser, console, MAKER)
    # The gateway restarted with new tokens: the viewer's removed, the maker's now a viewer's.
    tokens = {t: p for t, p in CONSOLE_TOKENS.items() if t != VIEWER}
    tokens[MAKER] = Principal("mara", frozenset({"viewer"}))
    async with restarted(console, tokens) as url:  # same database, same session key
        await viewer.goto(f"{url}/ops/networks")
        assert viewer.url.endswith("/ops/login")
        await maker.goto(f"{url}/ops/withdrawals")
        assert await maker.locator("main form[method=post]").count() == 0
        made = await maker.request.post(
            f"{url}/ops/batches",
            form={"csrf": await csrf_of(maker), "network": "ethereum-devnet", "asset": "ETH"},
        )
        assert made.status == 403
    await viewer.context.close()
    await maker.context.close()


async def test_malformed_posts_are_refused_not_crashed(browser: Browser, console: Console) -> None:
    page = await login(browser, console, ALICE)
    url = f"{console.url}/ops/alerts/{console.ids['mismatch']}/ack"
    form = "application/x-www-form-urlencoded"
    for body, kind in (
        (b"csrf=%ff%fe&note=x", form),  # not UTF-8
        (b"csrf=" + b"A" * 60_000 + b"&note=x", form),  # a huge token
        (b'{"csrf": "x", "note": "x"}', "application/json"),
        (b"\x00\x01garbage", "multipart/form-data; boundary=zz"),
    ):
        response = await page.request.post(
            url, data=body, headers={"Content-Type": kind}, max_redirects=0
        )
        assert 400 <= response.status < 500, (body[:20], response.status)
    assert await console.db.fetchval(
        "SELECT acknowledged_at IS NULL FROM alerts WHERE id = $1", console.ids["mismatch"]
    )
    await page.context.close()
