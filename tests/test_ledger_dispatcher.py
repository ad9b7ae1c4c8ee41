"""The outbox dispatcher against the reference ledger over real HTTP, on real PostgreSQL:
exactly-once delivery through a ledger that is down, answers 500, or is raced by a second
dispatcher; crash recovery; ordering of reversals; refused messages parked and alerted; a new
row sent at once by a dispatcher woken by the outbox's NOTIFY."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from chaingate.ledger.client import LedgerClient
from chaingate.ledger.dispatcher import OutboxDispatcher
from chaingate.ledger.reference import serve_reference_ledger
from chaingate.ledger.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER
from chaingate.settings import Principal
from chaingate.store import connect_pool, outbox
from chaingate.store.migrate import apply_migrations
from conftest import scratch_database
from console_support import ops_cli, serve_api
from harness import until

SECRET = b"dispatcher-test-secret-9a7e"


def fast(pool: asyncpg.Pool, client: LedgerClient, **options: Any) -> OutboxDispatcher:
    """A dispatcher with test-sized backoffs, so retries take milliseconds."""
    timings: dict[str, Any] = {
        "base_backoff": 0.05,
        "max_backoff": 0.2,
        "retry_wait": 0.01,
        "send_attempts": 2,
    }
    return OutboxDispatcher(pool, client, **(timings | options))


@pytest.fixture(scope="module")
async def core_dsn(pg_admin_dsn: str) -> AsyncIterator[str]:
    async with scratch_database(pg_admin_dsn, "cg_ledger_core") as dsn:
        yield dsn


@pytest.fixture(scope="module")
async def core_pool(core_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect_pool(core_dsn, min_size=1, max_size=10)
    async with pool.acquire() as conn:
        await apply_migrations(conn)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture(scope="module")
async def ledger_dsn(pg_admin_dsn: str) -> AsyncIterator[str]:
    async with scratch_database(pg_admin_dsn, "cg_ledger_books") as dsn:
        yield dsn


@pytest.fixture(autouse=True)
async def empty_outbox(core_pool: asyncpg.Pool) -> None:
    await core_pool.execute("TRUNCATE ledger_outbox, alerts RESTART IDENTITY")


@pytest.fixture
async def ledger_url(ledger_dsn: str) -> AsyncIterator[str]:
    async with serve_reference_ledger("127.0.0.1", 0, ledger_dsn, SECRET) as url:
        yield url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def credit_payload(user: str, amount: int) -> dict[str, object]:
    return {
        "idempotency_key": f"credit:{uuid.uuid4().hex}",
        "user_id": user,
        "network": "ethereum-devnet",
        "asset": "NEXO",
        "amount": str(amount),
        "decimals": 18,
        "txid": "0x" + uuid.uuid4().hex * 2,
        "position": "0",
        "block_number": 7,
    }


async def enqueue(
    pool: asyncpg.Pool, kind: str, payload: Mapping[str, object], *, due: bool = True
) -> int:
    return int(
        await pool.fetchval(
            """
        INSERT INTO ledger_outbox (idempotency_key, kind, payload, next_attempt_at)
        VALUES ($1, $2, $3::jsonb, CASE WHEN $4 THEN now() ELSE now() + interval '1 hour' END)
        RETURNING id
        """,
            payload["idempotency_key"],
            kind,
            payload,
            due,
        )
    )


async def enqueue_credits(pool: asyncpg.Pool, user: str, n: int) -> int:
    for i in range(1, n + 1):
        await enqueue(pool, "credit", credit_payload(user, i * 1000))
    return sum(i * 1000 for i in range(1, n + 1))


async def ledger_books(ledger_url: str, user: str) -> tuple[int, int]:
    """(balance, number of credits) the ledger holds for ``user``."""
    async with LedgerClient(ledger_url, SECRET, timeout=5) as client:
        balances = await client.get("/balances", {"user_id": user})
        credits = await client.get("/credits", {"user_id": user})
    return sum(int(b["amount"]) for b in balances["balances"]), len(credits["credits"])


async def undelivered(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM ledger_outbox WHERE delivered_at IS NULL"))


@asynccontextmanager
async def running(dispatcher: OutboxDispatcher) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop, interval=0.05))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


@asynccontextmanager
async def fault_proxy(
    upstream: str,
    *,
    fail_first: int = 0,
    delay: float = 0.0,
    overlaps: list[str] | None = None,
) -> AsyncIterator[tuple[str, Counter[str]]]:
    """A real HTTP hop in front of the ledger. Of its first ``fail_first`` requests, odd ones
    answer 500 without forwarding, even ones forward (the ledger applies the credit) and then
    answer 500 anyway. Each POST takes ``delay`` s more (a slow ledger); a POST that arrives
    while another with its idempotency key is in flight is added to ``overlaps``. Counts the
    requests per idempotency key."""
    seen: Counter[str] = Counter()
    in_flight: Counter[str] = Counter()
    total = 0

    async def forward(request: web.Request) -> web.Response:
        nonlocal total
        total += 1
        number = total
        body = await request.read()
        key = json.loads(body)["idempotency_key"] if request.method == "POST" else ""
        if key:
            seen[key] += 1
            if in_flight[key] and overlaps is not None:
                overlaps.append(key)
            in_flight[key] += 1
        try:
            return await _forward(request, body, number)
        finally:
            in_flight[key] -= 1

    async def _forward(request: web.Request, body: bytes, number: int) -> web.Response:
        if delay:
            await asyncio.sleep(delay)
        if number <= fail_first and number % 2 == 1:
            return web.json_response({"error": {"code": "boom", "message": "x"}}, status=500)
        headers = {
            h: request.headers[h]
            for h in (TIMESTAMP_HEADER, SIGNATURE_HEADER)
            if h in request.headers
        }
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method, upstream + request.raw_path, data=body, headers=headers
            ) as resp,
        ):
            status, answer = resp.status, await resp.read()
        if number <= fail_first:
            status = 500
        return web.Response(status=status, body=answer, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


# --- delivery ------------------------------------------------------------------------------
async def test_delivers_every_credit_exactly_once(core_pool: asyncpg.Pool, ledger_url: str) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    total = await enqueue_credits(core_pool, user, 25)
    registry = CollectorRegistry()
    async with LedgerClient(ledger_url, SECRET, timeout=5) as client:
        dispatcher = fast(core_pool, client, batch_size=10, registry=registry)
        counts = [await dispatcher.dispatch_once() for _ in range(4)]
    assert counts == [10, 10, 5, 0]
    assert await undelivered(core_pool) == 0
    assert await ledger_books(ledger_url, user) == (total, 25)
    stored = await core_pool.fetch("SELECT payload, response, attempts FROM ledger_outbox")
    for row in stored:
        assert row["response"]["credit_key"] == row["payload"]["idempotency_key"]
        assert row["attempts"] == 1
    sample = registry.get_sample_value(
        "chaingate_ledger_outbox_delivered_total", {"kind": "credit"}
    )
    assert sample == 25


async def test_rows_of_one_claim_are_sent_concurrently_up_to_the_limit(
    core_pool: asyncpg.Pool, ledger_url: str
) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    total = await enqueue_credits(core_pool, user, 12)
    in_flight = 0
    most = 0
    gate = asyncio.Event()

    async def forward(request: web.Request) -> web.Response:
        # Hold each request until four are in flight at once (or a deadline passes, which
        # only happens when the dispatcher sends fewer at a time: the assertion then fails).
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if in_flight >= 4:
            gate.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(gate.wait(), timeout=3)
        headers = {h: request.headers[h] for h in (TIMESTAMP_HEADER, SIGNATURE_HEADER)}
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                ledger_url + request.raw_path, data=await request.read(), headers=headers
            ) as resp,
        ):
            body = await resp.read()
        in_flight -= 1
        return web.Response(status=resp.status, body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/{tail:.*}", forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        proxy_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with LedgerClient(proxy_url, SECRET, timeout=10) as client:
            dispatcher = fast(core_pool, client, batch_size=12, concurrency=4)
            assert await dispatcher.dispatch_once() == 12
    finally:
        await runner.cleanup()
    assert most == 4  # four at once, never more
    assert await ledger_books(ledger_url, user) == (total, 12)


async def test_ledger_down_then_back_receives_every_credit_once(
    core_pool: asyncpg.Pool, ledger_dsn: str
) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    total = await enqueue_credits(core_pool, user, 12)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with LedgerClient(url, SECRET, timeout=2) as client:
        # A backoff long enough that "later" still holds when the row is read on a busy machine.
        dispatcher = fast(core_pool, client, batch_size=5, base_backoff=1.0, max_backoff=1.0)
        assert await dispatcher.dispatch_once() == 0  # nobody listens on the port
        first = await core_pool.fetchrow(
            "SELECT attempts, last_error, next_attempt_at > now() AS later"
            " FROM ledger_outbox ORDER BY id LIMIT 1"
        )
        assert first["attempts"] == 1 and first["last_error"] and first["later"]
        assert await undelivered(core_pool) == 12
        async with serve_reference_ledger("127.0.0.1", port, ledger_dsn, SECRET):
            async with running(dispatcher):
                await until(lambda: _none_left(core_pool))
            assert await ledger_books(url, user) == (total, 12)


async def _none_left(pool: asyncpg.Pool) -> bool:
    return await undelivered(pool) == 0


async def test_ledger_answering_500_still_gets_every_credit_once(
    core_pool: asyncpg.Pool, ledger_url: str
) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    total = await enqueue_credits(core_pool, user, 10)
    async with (
        fault_proxy(ledger_url, fail_first=14) as (proxy_url, seen),
        LedgerClient(proxy_url, SECRET, timeout=5) as client,
    ):
        dispatcher = fast(core_pool, client, batch_size=4)
        async with running(dispatcher):
            await until(lambda: _none_left(core_pool))
    assert sum(seen.values()) > 10  # the failures really happened and were retried
    assert await ledger_books(ledger_url, user) == (total, 10)


async def test_crash_after_ledger_applied_but_before_bookkeeping_counts_once(
    core_pool: asyncpg.Pool, ledger_url: str
) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    payload = credit_payload(user, 5_000)
    row_id = await enqueue(core_pool, "credit", payload)
    async with LedgerClient(ledger_url, SECRET, timeout=5) as client:
        # What a dispatcher killed right after the ledger answered left behind:
        first_answer = await client.post("/credits", payload)
        assert await undelivered(core_pool) == 1
        dispatcher = fast(core_pool, client)
        assert await dispatcher.dispatch_once() == 1
    response = await core_pool.fetchval("SELECT response FROM ledger_outbox WHERE id = $1", row_id)
    assert response == first_answer
    assert await ledger_books(ledger_url, user) == (5_000, 1)


async def test_crashed_dispatchers_lease_expires_and_rows_come_back(
    core_pool: asyncpg.Pool, ledger_url: str
) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    total = await enqueue_credits(core_pool, user, 3)
    async with LedgerClient(ledger_url, SECRET, timeout=5) as client:
        crashed = fast(core_pool, client, lease_seconds=0.5)
        assert len(await crashed._claim()) == 3  # claimed, then "killed" before sending
        survivor = fast(core_pool, client)
        assert await survivor.dispatch_once() == 0  # leased: not sent twice at once
        await asyncio.sleep(0.6)
        assert await survivor.dispatch_once() == 3
    assert await ledger_books(ledger_url, user) == (total, 3)


async def test_two_dispatchers_at_once_send_each_credit_once(
    core_pool: asyncpg.Pool, ledger_url: str
) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    total = await enqueue_credits(core_pool, user, 60)
    async with (
        fault_proxy(ledger_url) as (proxy_url, seen),
        LedgerClient(proxy_url, SECRET, timeout=5) as a,
        LedgerClient(proxy_url, SECRET, timeout=5) as b,
    ):
        first = fast(core_pool, a, batch_size=5)
        second = fast(core_pool, b, batch_size=5)
        async with running(first), running(second):
            await until(lambda: _none_left(core_pool))
    assert len(seen) == 60
    assert set(seen.values()) == {1}  # no row was ever sent by both
    assert await ledger_books(ledger_url, user) == (total, 60)


async def test_a_send_longer_than_the_lease_is_never_sent_twice_at_once(
    core_pool: asyncpg.Pool, ledger_url: str
) -> None:
    """Issue 8 item 7: the ledger takes longer to answer than a dispatcher's lease lasts. The
    sender renews its lease while it waits, so the other dispatcher never claims the row and
    sends it alongside."""
    user = f"u-{uuid.uuid4().hex[:8]}"
    total = await enqueue_credits(core_pool, user, 4)
    overlaps: list[str] = []
    async with (
        fault_proxy(ledger_url, delay=1.5, overlaps=overlaps) as (proxy_url, seen),
        LedgerClient(proxy_url, SECRET, timeout=10) as a,
        LedgerClient(proxy_url, SECRET, timeout=10) as b,
    ):
        first = fast(core_pool, a, batch_size=2, lease_seconds=0.5)
        second = fast(core_pool, b, batch_size=2, lease_seconds=0.5)
        async with running(first), running(second):
            await until(lambda: _none_left(core_pool))
    assert overlaps == []
    assert set(seen.values()) == {1}  # not even one after the other
    assert await ledger_books(ledger_url, user) == (total, 4)


# --- ordering --------------------------------------------------------------------------------
async def test_reversal_queued_before_its_credit_waits_for_it(
    core_pool: asyncpg.Pool, ledger_url: str
) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    credit = credit_payload(user, 8_000)
    reversal = {
        "idempotency_key": f"reversal:{uuid.uuid4().hex}",
        "credit_key": credit["idempotency_key"],
        "reason": "reorg",
    }
    reversal_id = await enqueue(core_pool, "reversal", reversal)  # lower id, due now
    credit_id = await enqueue(core_pool, "credit", credit, due=False)
    async with LedgerClient(ledger_url, SECRET, timeout=5) as client:
        dispatcher = fast(core_pool, client)
        assert await dispatcher.dispatch_once() == 0
        waiting = await core_pool.fetchrow(
            "SELECT attempts, delivered_at FROM ledger_outbox WHERE id = $1", reversal_id
        )
        assert waiting["attempts"] == 0 and waiting["delivered_at"] is None
        await core_pool.execute(
            "UPDATE ledger_outbox SET next_attempt_at = now() WHERE id = $1", credit_id
        )
        assert await dispatcher.dispatch_once() == 1
        assert await ledger_books(ledger_url, user) == (8_000, 1)
        assert await dispatcher.dispatch_once() == 1
    assert await ledger_books(ledger_url, user) == (0, 1)
    assert await core_pool.fetchval("SELECT count(*) FROM alerts") == 0


async def test_withdrawal_events_go_out_in_order(
    core_pool: asyncpg.Pool, ledger_url: str, ledger_dsn: str
) -> None:
    wid = f"w-{uuid.uuid4().hex[:8]}"
    events = [
        {
            "idempotency_key": f"{wid}:{status}",
            "withdrawal_id": wid,
            "status": status,
            "user_id": "u-order",
            "network": "ethereum-devnet",
            "asset": "ETH",
            "amount": "1000",
            "txid": None,
            "fee": None,
        }
        for status in ("batched", "approved")
    ]
    first_id = await enqueue(core_pool, "withdrawal_event", events[0], due=False)
    await enqueue(core_pool, "withdrawal_event", events[1])
    async with LedgerClient(ledger_url, SECRET, timeout=5) as client:
        dispatcher = fast(core_pool, client)
        assert await dispatcher.dispatch_once() == 0
        await core_pool.execute(
            "UPDATE ledger_outbox SET next_attempt_at = now() WHERE id = $1", first_id
        )
        assert await dispatcher.dispatch_once() + await dispatcher.dispatch_once() == 2
    conn = await asyncpg.connect(ledger_dsn)
    try:
        statuses = await conn.fetch(
            "SELECT status FROM refledger.withdrawal_events WHERE withdrawal_id = $1"
            " ORDER BY created_at",
            wid,
        )
    finally:
        await conn.close()
    assert [r["status"] for r in statuses] == ["batched", "approved"]


# --- refusals ----------------------------------------------------------------------------------
async def test_refused_credit_is_parked_and_alerted_never_dropped(
    core_pool: asyncpg.Pool, ledger_url: str
) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    bad = credit_payload(user, 1) | {"amount": "1.5"}
    bad_id = await enqueue(core_pool, "credit", bad)
    await enqueue(core_pool, "credit", credit_payload(user, 300))
    registry = CollectorRegistry()
    async with LedgerClient(ledger_url, SECRET, timeout=5) as client:
        dispatcher = fast(core_pool, client, registry=registry)
        assert await dispatcher.dispatch_once() == 1  # the good one still goes out
        assert await dispatcher.dispatch_once() == 0  # the parked one is not resent
    parked = await core_pool.fetchrow(
        "SELECT delivered_at, last_error, parked_at IS NOT NULL AS parked"
        " FROM ledger_outbox WHERE id = $1",
        bad_id,
    )
    assert parked["delivered_at"] is None and parked["parked"]
    assert "amount" in parked["last_error"]
    alert = await core_pool.fetchrow("SELECT * FROM alerts")
    assert alert["kind"] == "ledger_rejected" and alert["severity"] == "critical"
    assert alert["user_id"] == user and alert["txid"] == bad["txid"]
    assert alert["details"]["error_code"] == "invalid_field"
    assert (
        registry.get_sample_value("chaingate_ledger_outbox_parked_total", {"kind": "credit"}) == 1
    )
    assert await ledger_books(ledger_url, user) == (300, 1)


async def test_parked_row_is_unparked_by_ops_and_delivered_with_its_own_key(
    core_pool: asyncpg.Pool, ledger_url: str
) -> None:
    # The runbook's duplicate_deposit case: a second credit of one deposit under a new key is
    # refused while the first stands; once the first is reversed, ops resend the second.
    user = f"u-{uuid.uuid4().hex[:8]}"
    first = credit_payload(user, 5_000)
    second = first | {"idempotency_key": f"credit:{uuid.uuid4().hex}", "amount": "7000"}
    await enqueue(core_pool, "credit", first)
    olga = "ops-olga-token-00000000001"
    async with (
        LedgerClient(ledger_url, SECRET, timeout=5) as client,
        serve_api(core_pool, {olga: Principal("olga", frozenset({"ops_maker"}))}) as api,
    ):

        async def ops(*args: str) -> tuple[int, str]:
            return await ops_cli(api, olga, *args)

        dispatcher = fast(core_pool, client)
        assert await dispatcher.dispatch_once() == 1
        second_id = await enqueue(core_pool, "credit", second)
        assert await dispatcher.dispatch_once() == 0  # refused: parked
        code, out = await ops("outbox", "list")
        assert code == 0
        assert re.search(r"credit\s+0\s+1\s", out), out
        assert re.search(rf"#{second_id}\s+PARKED\s+credit\s+{second['idempotency_key']}", out)
        assert "duplicate_deposit" in out
        code, out = await ops("alerts", "list")
        [alert_line] = out.splitlines()[1:]
        assert code == 0 and re.search(
            r"OPEN\s+critical\s+ledger_rejected\s+ethereum-devnet\s+NEXO\s+7000", alert_line
        )
        alert_id = alert_line.split()[0].lstrip("#")
        code, out = await ops("alerts", "ack", alert_id, "--note", "ledger team told")
        assert (code, out.strip()) == (0, f"alert {alert_id} acknowledged")
        code, out = await ops("alerts", "ack", alert_id)
        assert (code, out.strip()) == (0, f"alert {alert_id} was already acknowledged")
        assert (await ops("alerts", "list"))[1].strip() == "no open alerts"

        reversal = {
            "idempotency_key": f"reversal:{uuid.uuid4().hex}",
            "credit_key": first["idempotency_key"],
            "reason": "reorg",
        }
        await enqueue(core_pool, "reversal", reversal)
        assert await dispatcher.dispatch_once() == 1
        assert await dispatcher.dispatch_once() == 0  # still parked: nothing resends it alone

        code, out = await ops("outbox", "unpark", str(second_id), "--note", "reversal delivered")
        assert (code, out.strip()) == (
            0,
            f"outbox row {second_id} due again ({second['idempotency_key']})",
        )
        assert await dispatcher.dispatch_once() == 1
        code, out = await ops("outbox", "resend", str(second_id))
        assert code == 1 and f"outbox row {second_id} is not parked (HTTP 409" in out
        code, out = await ops("outbox", "resend", str(second_id), "--token", "wrong-token-0000000")
        assert code == 2 and "HTTP 401" in out
    assert await ledger_books(ledger_url, user) == (7_000, 2)
    delivered = await core_pool.fetchrow(
        "SELECT delivered_at, idempotency_key FROM ledger_outbox WHERE id = $1", second_id
    )
    assert delivered["delivered_at"] is not None
    assert delivered["idempotency_key"] == second["idempotency_key"]
    audit = await core_pool.fetch(
        "SELECT actor, action, subject, details FROM audit_log WHERE action = 'outbox.resend'"
        " AND subject = $1",
        f"ledger_outbox:{second_id}",
    )
    assert [(a["actor"], a["details"]["idempotency_key"], a["details"]["note"]) for a in audit] == [
        ("olga", second["idempotency_key"], "reversal delivered")
    ]
    acks = await core_pool.fetch("SELECT details FROM audit_log WHERE action = 'alert.ack'")
    assert [a["details"]["note"] for a in acks] == ["ledger team told"]


async def test_wrong_secret_stalls_delivery_with_an_alert_but_parks_nothing(
    core_pool: asyncpg.Pool, ledger_url: str
) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    total = await enqueue_credits(core_pool, user, 3)
    async with LedgerClient(ledger_url, b"rotated-wrong-secret", timeout=5) as client:
        dispatcher = fast(core_pool, client)
        assert await dispatcher.dispatch_once() == 0
    assert (
        await core_pool.fetchval("SELECT count(*) FROM ledger_outbox WHERE parked_at IS NOT NULL")
        == 0
    )
    assert await core_pool.fetchval("SELECT kind FROM alerts") == "ledger_auth_failed"
    async with (
        LedgerClient(ledger_url, SECRET, timeout=5) as client,  # the secret is fixed
        running(fast(core_pool, client)),
    ):
        await until(lambda: _none_left(core_pool))
    assert await ledger_books(ledger_url, user) == (total, 3)


async def test_dispatcher_survives_its_database_connections_being_killed(
    core_pool: asyncpg.Pool, ledger_url: str, pg_admin_dsn: str
) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    total = await enqueue_credits(core_pool, user, 40)
    dsn = (
        pg_admin_dsn.rsplit("/", 1)[0] + "/" + await core_pool.fetchval("SELECT current_database()")
    )
    app_name = f"dispatcher-{uuid.uuid4().hex[:6]}"
    own_pool = await connect_pool(
        dsn, min_size=1, max_size=2, server_settings={"application_name": app_name}
    )
    try:
        async with (
            fault_proxy(ledger_url) as (proxy_url, seen),
            LedgerClient(proxy_url, SECRET, timeout=5) as client,
        ):
            dispatcher = fast(own_pool, client, batch_size=3, lease_seconds=0.3)
            async with running(dispatcher):
                # Kill the dispatcher's connections again and again while it works: between
                # the ledger's answer and the bookkeeping is one of the places it dies.
                for _ in range(8):
                    await core_pool.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name = $1",
                        app_name,
                    )
                    await asyncio.sleep(0.03)
                await until(lambda: _none_left(core_pool))
    finally:
        await own_pool.close()
    assert len(seen) == 40
    assert await ledger_books(ledger_url, user) == (total, 40)


# --- waking on NOTIFY (issue 9: head to ledger) ---------------------------------------------
async def _queue_in_transaction(pool: asyncpg.Pool, user: str, amount: int) -> None:
    """As the watcher queues a credit: store/outbox.py inside the caller's transaction."""
    payload = credit_payload(user, amount)
    async with pool.acquire() as conn, conn.transaction():
        await outbox.enqueue(conn, "credit", str(payload["idempotency_key"]), payload)


async def test_a_listening_dispatcher_sends_a_new_row_at_once_not_after_its_interval(
    core_pool: asyncpg.Pool, core_dsn: str, ledger_url: str
) -> None:
    """The outbox notifies at commit and the dispatcher, LISTENing on a connection of its own,
    starts a pass at once: a row queued while it idles goes out long before its 60 s poll."""
    user = f"u-{uuid.uuid4().hex[:8]}"
    await _queue_in_transaction(core_pool, user, 1000)
    stop = asyncio.Event()
    async with LedgerClient(ledger_url, SECRET, timeout=5) as client:
        dispatcher = fast(core_pool, client, listen=partial(asyncpg.connect, core_dsn))
        task = asyncio.create_task(dispatcher.run(stop, interval=60))
        try:
            await until(lambda: _none_left(core_pool), 10)  # the first pass
            await _queue_in_transaction(core_pool, user, 2000)  # while it idles
            await until(lambda: _none_left(core_pool), 10)
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=10)
    assert await ledger_books(ledger_url, user) == (3000, 2)


async def test_a_dispatcher_whose_listening_connection_is_killed_listens_again(
    core_pool: asyncpg.Pool, core_dsn: str, ledger_url: str
) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    name = f"listener-{uuid.uuid4().hex[:6]}"
    listen = partial(asyncpg.connect, core_dsn, server_settings={"application_name": name})

    async def listener_pids() -> set[int]:
        rows = await core_pool.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1", name
        )
        return {int(r["pid"]) for r in rows}

    stop = asyncio.Event()
    async with LedgerClient(ledger_url, SECRET, timeout=5) as client:
        dispatcher = fast(core_pool, client, listen=listen)
        task = asyncio.create_task(dispatcher.run(stop, interval=60))
        try:

            async def listening() -> bool:
                return bool(await listener_pids())

            await until(listening, 10)
            first = await listener_pids()
            await core_pool.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid",
                                    list(first))  # fmt: skip

            async def again() -> bool:
                pids = await listener_pids()
                return bool(pids) and not pids & first

            await until(again, 10)
            await _queue_in_transaction(core_pool, user, 1000)
            await until(lambda: _none_left(core_pool), 10)
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=10)
    assert await ledger_books(ledger_url, user) == (1000, 1)
