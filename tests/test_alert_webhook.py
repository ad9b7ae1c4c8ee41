"""The alert pusher against a real local webhook receiver (aiohttp over real HTTP) on real
PostgreSQL: every alert arrives, once in the normal case, in order, through a receiver that is
down, answers 500 or refuses; two pushers at once; signatures; no secret in the logs."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from chaingate.alerting import ALERT_ID_HEADER, AlertPusher, WebhookSink
from chaingate.domain import AlertKind, AlertSeverity, NewAlert
from chaingate.errors import ConfigError
from chaingate.ledger.errors import BadSignatureError
from chaingate.ledger.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from chaingate.service import run_service
from chaingate.settings import Principal, Settings
from chaingate.store.alerts import raise_alert, redeliver
from console_support import ops_cli, serve_api
from harness import LEDGER_SECRET, until

HOOK_SECRET = b"webhook-test-secret-4f2a9c"
URL_TOKEN = "hk-T0KEN-7c1e55d0"  # the receiver's token in the URL path
QUERY_KEY = "qk-S3CRET-91ab"  # and one in the query string


@dataclass
class Received:
    alert_id: str
    body: dict[str, Any]
    raw: bytes
    headers: dict[str, str]


@dataclass
class Receiver:
    """A webhook receiver: records every request; answers ``plan`` statuses first (in order),
    then those of ``per_alert`` for an alert id, then 200."""

    received: list[Received] = field(default_factory=list)
    plan: list[int] = field(default_factory=list)
    per_alert: dict[int, int] = field(default_factory=dict)
    delay: float = 0.0
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = json.loads(raw)
        self.received.append(
            Received(request.headers.get(ALERT_ID_HEADER, ""), body, raw, dict(request.headers))
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.plan.pop(0) if self.plan else self.per_alert.get(body["id"], 200)
        # A receiver that echoes the URL it was called on (its token included) in its errors.
        text = "ok" if status < 300 else f"refused at {request.url}"
        return web.Response(status=status, text=text)

    def ids(self) -> list[int]:
        return [r.body["id"] for r in self.received]


@asynccontextmanager
async def serving(receiver: Receiver, port: int = 0) -> AsyncIterator[Receiver]:
    app = web.Application()
    app.router.add_post("/hooks/{token}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    bound = runner.addresses[0][1]
    receiver.url = f"http://127.0.0.1:{bound}/hooks/{URL_TOKEN}?key={QUERY_KEY}"
    try:
        yield receiver
    finally:
        await runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serving(Receiver()) as r:
        yield r


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fast(pool: asyncpg.Pool, sink: WebhookSink, **options: Any) -> AlertPusher:
    """A pusher with test-sized backoffs, so retries take milliseconds."""
    timings: dict[str, Any] = {
        "base_backoff": 0.05,
        "max_backoff": 0.2,
        "retry_wait": 0.01,
        "send_attempts": 2,
    }
    return AlertPusher(pool, sink, **(timings | options))


async def raise_alerts(db: asyncpg.Pool, n: int, prefix: str = "a") -> list[int]:
    async with db.acquire() as conn:
        for i in range(n):
            await raise_alert(
                conn,
                NewAlert(
                    kind=AlertKind.NETWORK_MISMATCH,
                    severity=AlertSeverity.WARNING,
                    message=f"alert {i}",
                    dedup_key=f"{prefix}:{i}",
                    network="bsc-devnet",
                    asset="NEXO",
                    amount=10**19 + i,
                    txid=f"0x{i:064x}",
                    user_id="alice",
                ),
            )
        rows = await conn.fetch("SELECT id FROM alerts WHERE dedup_key LIKE $1", f"{prefix}:%")
    return sorted(r["id"] for r in rows)


async def undelivered(db: asyncpg.Pool) -> int:
    return int(await db.fetchval("SELECT count(*) FROM alerts WHERE delivered_at IS NULL"))


async def none_left(db: asyncpg.Pool) -> bool:
    return await undelivered(db) == 0


@asynccontextmanager
async def running(pusher: AlertPusher) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(pusher.run(stop, interval=0.05))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


# --- 1. delivery ------------------------------------------------------------------------------
async def test_every_alert_is_pushed_once_in_order_with_exact_fields(
    db: asyncpg.Pool, receiver: Receiver
) -> None:
    async with db.acquire() as conn:
        await raise_alert(
            conn,
            NewAlert(
                kind=AlertKind.NETWORK_MISMATCH,
                severity=AlertSeverity.CRITICAL,
                message="BEP-20 NEXO sent to an ERC-20 deposit address",
                dedup_key="deposit:bsc-devnet:0xabc:log:3",
                network="bsc-devnet",
                asset="NEXO",
                amount=2**200 + 1,  # beyond any float and any bigint
                txid="0xabc",
                user_id="alice",
                details={"reason": "watch_only_network", "position": "log:3"},
            ),
        )
        await raise_alert(
            conn,
            NewAlert(
                kind=AlertKind.LEDGER_AUTH_FAILED,
                severity=AlertSeverity.CRITICAL,
                message="m",
                dedup_key="x",
            ),
        )
    ids = await raise_alerts(db, 3)
    registry = CollectorRegistry()
    async with WebhookSink(receiver.url) as sink:
        pusher = fast(db, sink, batch_size=2, registry=registry)
        assert [await pusher.push_once() for _ in range(4)] == [2, 2, 1, 0]
        await pusher.refresh_gauges()

    first_id = ids[0] - 2
    assert receiver.ids() == [first_id, first_id + 1, *ids]  # each once, oldest first
    first = receiver.received[0]
    created = await db.fetchval("SELECT created_at FROM alerts WHERE id = $1", first_id)
    assert first.body == {
        "id": first_id,
        "kind": "network_mismatch",
        "severity": "critical",
        "network": "bsc-devnet",
        "asset": "NEXO",
        "amount": str(2**200 + 1),
        "txid": "0xabc",
        "user_id": "alice",
        "message": "BEP-20 NEXO sent to an ERC-20 deposit address",
        "details": {"reason": "watch_only_network", "position": "log:3"},
        "created_at": created.isoformat(),
    }
    assert first.alert_id == str(first_id)
    assert first.headers["Content-Type"] == "application/json"
    assert SIGNATURE_HEADER not in first.headers  # no secret configured: unsigned
    second = receiver.received[1].body
    assert second["amount"] is None and second["network"] is None and second["details"] == {}
    assert receiver.received[2].body["amount"] == str(10**19)

    rows = await db.fetch("SELECT delivered_at, attempts, last_error FROM alerts")
    assert all(r["delivered_at"] is not None and r["attempts"] == 1 for r in rows)
    assert all(r["last_error"] is None for r in rows)
    delivered = registry.get_sample_value(
        "chaingate_alert_webhook_delivered_total",
        {"kind": "network_mismatch", "severity": "warning"},
    )
    assert delivered == 3
    assert (
        registry.get_sample_value(
            "chaingate_alerts_open", {"kind": "network_mismatch", "severity": "warning"}
        )
        == 3
    )
    assert (
        registry.get_sample_value(
            "chaingate_alerts_undelivered", {"kind": "network_mismatch", "severity": "warning"}
        )
        == 0
    )


# --- 2. receiver down, then up -----------------------------------------------------------------
async def test_receiver_down_then_up_gets_every_alert(db: asyncpg.Pool) -> None:
    ids = await raise_alerts(db, 12)
    port = free_port()
    url = f"http://127.0.0.1:{port}/hooks/{URL_TOKEN}"
    registry = CollectorRegistry()
    async with WebhookSink(url) as sink:
        # A backoff long enough that "later" still holds when the row is read on a busy machine.
        pusher = fast(db, sink, batch_size=5, registry=registry, base_backoff=1.0, max_backoff=1.0)
        assert await pusher.push_once() == 5  # nobody listens on the port
        first = await db.fetchrow(
            "SELECT attempts, last_error, next_attempt_at > now() AS later, delivered_at"
            " FROM alerts ORDER BY id LIMIT 1"
        )
        assert first["attempts"] == 1 and first["later"] and first["delivered_at"] is None
        assert "unreachable" in first["last_error"]
        assert await undelivered(db) == 12
        assert (
            registry.get_sample_value(
                "chaingate_alert_webhook_failed_total", {"reason": "unavailable"}
            )
            == 1
        )
        async with serving(Receiver(), port) as receiver, running(pusher):
            await until(lambda: none_left(db))
    assert sorted(set(receiver.ids())) == ids  # none lost


# --- 3. 5xx retried; 4xx held, not spun on, re-driven ------------------------------------------
async def test_receiver_answering_500_is_retried_until_it_accepts(
    db: asyncpg.Pool, receiver: Receiver
) -> None:
    ids = await raise_alerts(db, 6)
    receiver.plan = [500, 503, 500, 429, 500]
    async with WebhookSink(receiver.url) as sink, running(fast(db, sink, batch_size=4)):
        await until(lambda: none_left(db))
    assert len(receiver.received) == 6 + 5  # the failures happened and were retried
    assert sorted(set(receiver.ids())) == ids  # and every alert arrived in the end
    first = await db.fetchrow("SELECT attempts, last_error FROM alerts WHERE id = $1", ids[0])
    assert first["attempts"] > 1 and first["last_error"] is None


async def test_refused_alert_is_held_not_retried_in_a_loop_and_redriven(
    db: asyncpg.Pool, receiver: Receiver
) -> None:
    ids = await raise_alerts(db, 3)
    receiver.per_alert = {ids[1]: 422}
    registry = CollectorRegistry()
    async with WebhookSink(receiver.url) as sink:
        pusher = fast(db, sink, registry=registry)  # rejected_backoff: the default hour
        assert await pusher.push_once() == 3
        for _ in range(5):
            assert await pusher.push_once() == 0  # the refused one is not sent again
        assert Counter(receiver.ids()) == {ids[0]: 1, ids[1]: 1, ids[2]: 1}  # others went on
        held = await db.fetchrow(
            "SELECT delivered_at, attempts, last_error,"
            " next_attempt_at > now() + interval '50 minutes' AS held FROM alerts WHERE id = $1",
            ids[1],
        )
        assert held["delivered_at"] is None and held["attempts"] == 1 and held["held"]
        assert "HTTP 422" in held["last_error"]
        assert (
            registry.get_sample_value(
                "chaingate_alert_webhook_failed_total", {"reason": "rejected"}
            )
            == 1
        )
        # The receiver is fixed; ops re-drive (`chaingate ops alerts redeliver ID`).
        receiver.per_alert = {}
        async with db.acquire() as conn:
            assert await redeliver(conn, [ids[1]]) == 1
        assert await pusher.push_once() == 1
    assert receiver.ids() == [*ids, ids[1]]
    assert await none_left(db)


async def test_receiver_refusing_the_url_holds_the_batch_after_one_request(
    db: asyncpg.Pool, receiver: Receiver
) -> None:
    ids = await raise_alerts(db, 4)
    receiver.plan = [404]
    async with WebhookSink(receiver.url) as sink:
        pusher = fast(db, sink)
        assert await pusher.push_once() == 4
        for _ in range(5):
            assert await pusher.push_once() == 0  # held: no tight loop against the receiver
        assert receiver.ids() == [ids[0]]  # one request, not one per alert
        held = await db.fetchval(
            "SELECT count(*) FROM alerts WHERE delivered_at IS NULL"
            " AND next_attempt_at > now() + interval '50 minutes'"
        )
        assert held == 4
        async with db.acquire() as conn:
            assert await redeliver(conn, None) == 4
        async with running(pusher):
            await until(lambda: none_left(db))
    assert receiver.ids() == [ids[0], *ids]


# --- 4. several pushers ------------------------------------------------------------------------
async def test_two_pushers_send_each_alert_once(db: asyncpg.Pool, receiver: Receiver) -> None:
    ids = await raise_alerts(db, 40)
    receiver.delay = 0.003  # keep requests in flight, so the two pushers overlap
    async with (
        WebhookSink(receiver.url) as a,
        WebhookSink(receiver.url) as b,
        running(fast(db, a, batch_size=5)),
        running(fast(db, b, batch_size=5)),
    ):
        await until(lambda: none_left(db))
    counts = Counter(receiver.ids())
    assert sorted(counts) == ids
    assert set(counts.values()) == {1}  # no alert was sent by both


async def test_crashed_pushers_lease_expires_and_alerts_come_back(
    db: asyncpg.Pool, receiver: Receiver
) -> None:
    ids = await raise_alerts(db, 3)
    async with WebhookSink(receiver.url) as sink:
        crashed = fast(db, sink, lease_seconds=0.3)
        assert len(await crashed._claim()) == 3  # claimed, then "killed" before sending
        survivor = fast(db, sink)
        assert await survivor.push_once() == 0  # leased: not sent twice at once
        async with running(survivor):
            await until(lambda: none_left(db))
    assert receiver.ids() == ids


async def test_slow_receiver_makes_the_pusher_hand_back_what_its_lease_cannot_cover(
    db: asyncpg.Pool, receiver: Receiver
) -> None:
    ids = await raise_alerts(db, 5)
    receiver.delay = 0.25  # every answer takes 0.25 s; one send may take up to 0.4 s
    async with WebhookSink(receiver.url, timeout=0.4) as sink:
        pusher = fast(db, sink, lease_seconds=1.0, send_attempts=1)
        assert await pusher.push_once() == 5
        sent = len(receiver.received)
        # It stopped before a send could outlive the lease (another pusher may own the alert
        # then), and the alerts it did not send are due again at once, not after the lease.
        assert 1 <= sent <= 4
        due = await db.fetchval(
            "SELECT count(*) FROM alerts WHERE delivered_at IS NULL AND next_attempt_at <= now()"
        )
        assert due == 5 - sent
        async with running(pusher):
            await until(lambda: none_left(db))
    assert receiver.ids() == ids


# --- 5. signature ------------------------------------------------------------------------------
async def test_signed_pushes_verify_with_the_shared_secret(
    db: asyncpg.Pool, receiver: Receiver
) -> None:
    await raise_alerts(db, 2)
    async with WebhookSink(receiver.url, HOOK_SECRET) as sink:
        assert await fast(db, sink).push_once() == 2
    assert len(receiver.received) == 2
    for got in receiver.received:
        timestamp, signature = got.headers[TIMESTAMP_HEADER], got.headers[SIGNATURE_HEADER]
        verify(HOOK_SECRET, timestamp, got.raw, signature, now=time.time())  # raises if bad
        with pytest.raises(BadSignatureError):
            verify(b"another-secret-0000", timestamp, got.raw, signature, now=time.time())
        with pytest.raises(BadSignatureError):
            verify(HOOK_SECRET, timestamp, got.raw + b" ", signature, now=time.time())


# --- 6. no secret in logs ----------------------------------------------------------------------
async def test_webhook_url_secrets_never_reach_logs_or_stored_errors(
    db: asyncpg.Pool, receiver: Receiver
) -> None:
    ids = await raise_alerts(db, 3)
    receiver.plan = [500]
    receiver.per_alert = {ids[2]: 400}
    dead = f"http://127.0.0.1:{free_port()}/hooks/{URL_TOKEN}?key={QUERY_KEY}"
    with structlog.testing.capture_logs() as logs:
        async with WebhookSink(dead, HOOK_SECRET) as down:
            await fast(db, down).push_once()  # connection refused
        await db.execute("UPDATE alerts SET next_attempt_at = now()")
        async with WebhookSink(receiver.url, HOOK_SECRET) as sink:
            pusher = fast(db, sink)
            assert repr(pusher).count(URL_TOKEN) == 0
            async with running(pusher):  # 500, then 2 delivered, then 400 (echoing the URL)
                await until(lambda: _settled(db, ids[2]))
    events = {e["event"] for e in logs}
    assert {"alert_pusher_target", "alert_pushed", "alert_push_retry_later"} <= events
    assert "alert_push_rejected" in events
    text = repr(logs) + repr(await db.fetch("SELECT last_error FROM alerts"))
    assert "refused at http://127.0.0.1" in text  # the receiver's echo was kept, redacted
    for secret in (URL_TOKEN, QUERY_KEY, HOOK_SECRET.decode()):
        assert secret not in text


async def _settled(db: asyncpg.Pool, refused_id: int) -> bool:
    return bool(
        await db.fetchval(
            "SELECT count(*) = 0 FROM alerts WHERE delivered_at IS NULL AND id <> $1", refused_id
        )
        and await db.fetchval("SELECT attempts > 0 FROM alerts WHERE id = $1", refused_id)
    )


# --- ops: see and re-drive undelivered alerts -------------------------------------------------
async def test_ops_cli_lists_held_alerts_and_redelivers_them(db: asyncpg.Pool) -> None:
    ids = await raise_alerts(db, 3)
    await db.execute(
        "UPDATE alerts SET attempts = 1, next_attempt_at = now() + interval '1 hour',"
        " last_error = 'webhook refused the alert: HTTP 422: bad' WHERE id = ANY($1::bigint[])",
        ids[:2],
    )
    await db.execute("UPDATE alerts SET delivered_at = now() WHERE id = $1", ids[2])
    token = "ops-alice-token-0000000001"
    async with serve_api(db, {token: Principal("alice", frozenset({"ops_maker"}))}) as url:

        async def cli(*args: str) -> tuple[int, str]:
            return await ops_cli(url, token, "alerts", *args)

        code, out = await cli("undelivered")
        assert code == 0, out
        lines = out.strip().splitlines()[1:]  # under the header
        assert [line.split()[0] for line in lines] == [f"#{ids[0]}", f"#{ids[1]}"]
        assert "HTTP 422: bad" in lines[0]

        code, out = await cli("redeliver")
        assert code == 2 and "give alert ids or --all" in out
        code, out = await cli("redeliver", str(ids[0]))
        assert code == 0 and "1 undelivered alert(s) due" in out, out
        due = await db.fetch(
            "SELECT id FROM alerts WHERE delivered_at IS NULL AND next_attempt_at <= now()"
        )
        assert [r["id"] for r in due] == [ids[0]]
        code, out = await cli("redeliver", "--all")
        assert code == 0 and "2 undelivered alert(s) due" in out, out
    audit = await db.fetch("SELECT actor, action FROM audit_log ORDER BY id")
    assert [(r["actor"], r["action"]) for r in audit] == [("alice", "alert.redeliver")] * 2


# --- the service runs the pusher in the dispatcher role ----------------------------------------
async def test_service_dispatcher_role_pushes_alerts(
    database: str, db: asyncpg.Pool, receiver: Receiver, ledger_url: str
) -> None:
    ids = await raise_alerts(db, 2)
    settings = Settings(
        database_url=database,
        networks={},
        chains_dir=Path("."),
        ledger_url=ledger_url,
        ledger_secret=LEDGER_SECRET,
        alert_webhook_url=receiver.url,
        alert_webhook_secret=HOOK_SECRET,
    )
    stop = asyncio.Event()
    service = asyncio.create_task(run_service(settings, ["dispatcher"], stop))
    try:
        await until(lambda: none_left(db))
    finally:
        stop.set()
        await asyncio.wait_for(service, timeout=10)
    assert receiver.ids() == ids
    assert SIGNATURE_HEADER in receiver.received[0].headers


# --- 7. settings -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"CHAINGATE_ALERT_WEBHOOK_URL": f"ftp://hooks.example/{URL_TOKEN}"},
            "CHAINGATE_ALERT_WEBHOOK_URL: expected an http:// or https:// URL with a host",
        ),
        (
            {"CHAINGATE_ALERT_WEBHOOK_URL": f"hooks.example/{URL_TOKEN}"},
            "CHAINGATE_ALERT_WEBHOOK_URL: expected an http:// or https:// URL with a host",
        ),
        (
            {"CHAINGATE_ALERT_WEBHOOK_URL": f"https:///{URL_TOKEN}"},
            "CHAINGATE_ALERT_WEBHOOK_URL: expected an http:// or https:// URL with a host",
        ),
        (
            {"CHAINGATE_ALERT_WEBHOOK_URL": f"https://h:99999/{URL_TOKEN}"},
            "CHAINGATE_ALERT_WEBHOOK_URL: expected an http:// or https:// URL with a host",
        ),
        (
            {
                "CHAINGATE_ALERT_WEBHOOK_URL": "https://hooks.example/x",
                "CHAINGATE_ALERT_WEBHOOK_SECRET": URL_TOKEN[:8],
            },
            "CHAINGATE_ALERT_WEBHOOK_SECRET: 16+ characters when set",
        ),
    ],
)
def test_bad_webhook_settings_are_one_line_without_the_secret(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"CHAINGATE_DATABASE_URL": "postgresql://u@h/db", **env})
    assert str(info.value) == message
    assert URL_TOKEN[:8] not in str(info.value)


def test_webhook_settings_are_read_and_kept_out_of_repr() -> None:
    url = f"https://hooks.example/{URL_TOKEN}?key={QUERY_KEY}"
    settings = Settings.from_env(
        {
            "CHAINGATE_DATABASE_URL": "postgresql://u@h/db",
            "CHAINGATE_ALERT_WEBHOOK_URL": url,
            "CHAINGATE_ALERT_WEBHOOK_SECRET": HOOK_SECRET.decode(),
        }
    )
    assert settings.alert_webhook_url == url
    assert settings.alert_webhook_secret == HOOK_SECRET
    assert URL_TOKEN not in repr(settings) and HOOK_SECRET.decode() not in repr(settings)
    assert (
        repr(WebhookSink(url, HOOK_SECRET))
        == "WebhookSink('https://hooks.example/***', signed=True)"
    )
    unset = Settings.from_env({"CHAINGATE_DATABASE_URL": "postgresql://u@h/db"})
    assert unset.alert_webhook_url is None and unset.alert_webhook_secret == b""
