"""The gateway app (API + ops console) over real HTTP on a database of its own, with demo-like
data, for the console's browser tests and the ops CLI tests."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp.test_utils import TestServer
from cryptography.fernet import Fernet

from chaingate.api import ApiContext, build_app
from chaingate.chains.registry import address_codec
from chaingate.devnet import postgres
from chaingate.ledger.messages import withdrawal_event_key
from chaingate.settings import Principal
from chaingate.store import connect_pool, netstatus
from harness import SERVICE_TOKEN, TOKENS, devnet_network
from signer_support import HOT_KEY, plan_for
from withdrawal_stack import CHAINGATE, signer_limits

MAKER = "console-maker-token-00000001"
ALICE = "console-approver-alice-0001"
BOB = "console-approver-bob-00001"
VIEWER = "console-viewer-token-0000001"
CONSOLE_TOKENS = {
    **TOKENS,
    MAKER: Principal("mara", frozenset({"ops_maker"})),
    ALICE: Principal("alice", frozenset({"ops_approver"})),
    BOB: Principal("bob", frozenset({"ops_approver"})),
    VIEWER: Principal("vic", frozenset({"viewer"})),
}
HEADS = {"ethereum-devnet": 1293, "bsc-devnet": 880, "bitcoin-devnet": 431, "tron-devnet": 2101}
NETWORKS = ("ethereum-devnet", "bsc-devnet", "bitcoin-devnet", "tron-devnet")
SEAL_KEY = b"console-test-seal-key-0123456789abcdef"
# Destinations of the demo-like withdrawals (EIP-55; any valid address will do).
DESTINATIONS = (
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
)


@dataclass
class Console:
    url: str
    db: asyncpg.Pool
    ctx: ApiContext
    dsn: str
    ids: dict[str, int] = field(default_factory=dict)


@asynccontextmanager
async def serve_console(admin_dsn: str) -> AsyncIterator[Console]:
    """The whole gateway app (API and /ops) on 127.0.0.1 over real TCP."""
    networks = {n: devnet_network(n, "http://127.0.0.1:1") for n in NETWORKS}
    async with postgres.scratch_database(
        postgres.server_of(admin_dsn), "cg_console", migrate=True
    ) as dsn:
        pool = await connect_pool(dsn, max_size=8)
        try:
            ctx = ApiContext(
                db=pool,
                networks=networks,
                codecs={name: address_codec(n) for name, n in networks.items()},
                tokens=CONSOLE_TOKENS,
                console_session_key=Fernet.generate_key().decode(),
                seal_key=SEAL_KEY,
                approval_quorum=2,
            )
            server = TestServer(build_app(ctx), host="127.0.0.1")
            await server.start_server()
            try:
                yield Console(str(server.make_url("")).rstrip("/"), pool, ctx, dsn)
            finally:
                await server.close()
        finally:
            await pool.close()


async def seed(db: asyncpg.Pool) -> dict[str, int]:
    """Deposits in every state, a delivered and a parked ledger message, two alerts."""
    deposits = [
        # network, txid, pos, asset, decimals, user, amount, status, conf, required, reason
        ("ethereum-devnet", "0x" + "a1" * 32, "log:3", "ETH", 18, "olga", 1_250_000_000_000_000_000, "credited", 12, 12, None),
        ("ethereum-devnet", "0x" + "b2" * 32, "log:0", "NEXO", 18, "pia", 4_000_000_000_000_000_000_000, "confirming", 5, 12, None),
        ("bitcoin-devnet", "c3" * 32, "out:1", "BTC", 8, "olga", 15_000_000, "credited", 6, 6, None),
        ("tron-devnet", "d4" * 32, "log:0", "USDT", 6, "quinn", 2_500_000_000, "confirming", 10, 19, None),
        ("bsc-devnet", "0x" + "e5" * 32, "log:1", "NEXO", 18, "pia", 500_000_000_000_000_000_000, "rejected", 0, 0, "watch_only_network"),
        ("ethereum-devnet", "0x" + "f6" * 32, "log:2", "ETH", 18, "olga", 1_000, "rejected", 0, 0, "dust"),
    ]  # fmt: skip
    ids: dict[str, int] = {}
    async with db.acquire() as conn, conn.transaction():
        for n, (net, txid, pos, asset, dec, user, amount, status, conf, req, reason) in enumerate(
            deposits
        ):
            key = f"credit:{net}:{txid}:{pos}:g0" if status == "credited" else None
            ids[f"deposit{n}"] = await conn.fetchval(
                """INSERT INTO deposits (network, txid, position, asset, decimals, to_key, user_id,
                       amount, block_number, block_hash, status, reason, confirmations,
                       required_confirmations, credit_key, credited_at)
                   VALUES ($1,$2,$3,$4,$5,'0xto',$6,$7,100+$8,'0xhash',$9,$10,$11,$12,$13,
                           CASE WHEN $13::text IS NULL THEN NULL ELSE now() END)
                   RETURNING id""",
                net, txid, pos, asset, dec, user, amount, n, status, reason, conf, req, key,
            )  # fmt: skip
            if key:
                await conn.execute(
                    """INSERT INTO ledger_outbox (idempotency_key, kind, payload, delivered_at,
                           attempts, response)
                       VALUES ($1, 'credit', $2::text::jsonb, now(), 1, '{"status": "ok"}')""",
                    key,
                    json.dumps({"idempotency_key": key, "user_id": user, "amount": str(amount)}),
                )
        parked_key = "credit:ethereum-devnet:0x" + "99" * 32 + ":log:0:g1"
        ids["parked"] = await conn.fetchval(
            """INSERT INTO ledger_outbox (idempotency_key, kind, payload, attempts,
                   next_attempt_at, parked_at, last_error, response)
               VALUES ($1, 'credit', $2::text::jsonb, 1, 'infinity', now(),
                       'ledger refused: HTTP 409 duplicate_deposit',
                       '{"error": {"code": "duplicate_deposit"}}') RETURNING id""",
            parked_key,
            json.dumps({"idempotency_key": parked_key, "user_id": "olga", "amount": "7000"}),
        )
        ids["mismatch"] = await conn.fetchval(
            """INSERT INTO alerts (kind, severity, network, asset, amount, txid, user_id, message,
                   dedup_key, details)
               VALUES ('network_mismatch', 'critical', 'bsc-devnet', 'NEXO',
                       500000000000000000000, $1, 'pia',
                       'NEXO arrived on watch-only bsc-devnet at a deposit address of pia',
                       'mismatch:1', '{"reason": "watch_only_network"}') RETURNING id""",
            "0x" + "e5" * 32,
        )
        ids["rejected"] = await conn.fetchval(
            """INSERT INTO alerts (kind, severity, network, asset, amount, user_id, message,
                   dedup_key, details, delivered_at)
               VALUES ('ledger_rejected', 'critical', 'ethereum-devnet', 'ETH', 7000, 'olga',
                       'the ledger refused a credit (duplicate_deposit); the row is parked',
                       'rejected:1', $1::text::jsonb, now()) RETURNING id""",
            json.dumps({"outbox_id": ids["parked"], "error_code": "duplicate_deposit"}),
        )
        await conn.execute(
            """INSERT INTO leases (name, holder, epoch, expires_at)
               SELECT 'watcher:' || n, 'gw-1:4242:9f3a', 3, now() + interval '1 hour'
                 FROM unnest($1::text[]) AS n""",
            list(NETWORKS),
        )
        # What a watchers process publishes about its endpoint pool (watcher/status.py).
        for network, head in HEADS.items():
            endpoints = [{"name": "primary", "head": head, "healthy": True, "latency_ms": 38.0,
                          "chain_check": "ok"}]  # fmt: skip
            if network == "tron-devnet":
                endpoints.append(
                    {"name": "backup", "head": head - 40, "healthy": False,
                     "latency_ms": 912.0, "benched_reason": "lagging", "chain_check": "ok"}
                )  # fmt: skip
            if network == "bsc-devnet":
                endpoints.append(
                    {"name": "public-rpc", "head": None, "healthy": False, "latency_ms": 55.0,
                     "benched_reason": "wrong_chain", "chain_check": "mismatch"}
                )  # fmt: skip
            await netstatus.publish(conn, network, "gw-1:4242:9f3a", head, endpoints)
        await conn.execute(
            """INSERT INTO chain_cursor (network, height) VALUES
               ('ethereum-devnet', 1290), ('bsc-devnet', 880), ('bitcoin-devnet', 431),
               ('tron-devnet', 2077)"""
        )
    return ids


@asynccontextmanager
async def serve_api(pool: asyncpg.Pool, tokens: dict[str, Principal]) -> AsyncIterator[str]:
    """Only the gateway API (no networks, no console) on a pool the test already has."""
    ctx = ApiContext(db=pool, networks={}, codecs={}, tokens=tokens)
    server = TestServer(build_app(ctx), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def ops_cli(api_url: str, token: str, *args: str) -> tuple[int, str]:
    """``chaingate ops ...`` as an operator runs it: its own process, over the API."""
    env = {
        **os.environ,
        "CHAINGATE_API_URL": api_url,
        "CHAINGATE_OPS_TOKEN": token,
        "CHAINGATE_LOG_FORMAT": "json",
    }
    env.pop("CHAINGATE_DATABASE_URL", None)  # over the API only: no database needed or used
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chaingate.cli",
        "ops",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


@asynccontextmanager
async def restarted(console: Console, tokens: dict[str, Principal]) -> AsyncIterator[str]:
    """The gateway app again on the same database and session key with other tokens (a
    restart with a changed token configuration); its URL. Same host, so the browser's cookies
    of ``console`` go to it too."""
    server = TestServer(build_app(replace(console.ctx, tokens=tokens)), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@asynccontextmanager
async def running_signer(console: Console, folder: Path) -> AsyncIterator[Path]:
    """The real ``chaingate signer`` process on the console's database (devnet hot key); yields
    its log file. Stopped (SIGTERM, then SIGKILL) on the way out."""
    log_path = folder / "signer.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINGATE_")}
    env.update(
        CHAINGATE_DATABASE_URL=console.dsn,
        CHAINGATE_NETWORKS="ethereum-devnet",
        CHAINGATE_APPROVAL_SEAL_KEY=SEAL_KEY.decode(),
        CHAINGATE_APPROVAL_QUORUM="2",
        CHAINGATE_SIGNER_DEVNET_KEYS=HOT_KEY.hex(),
        CHAINGATE_SIGNER_LIMITS=str(signer_limits(folder)),
        CHAINGATE_LOG_FORMAT="json",
    )
    with log_path.open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            CHAINGATE, "signer", env=env, stdout=log, stderr=log
        )
    try:
        yield log_path
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def stand_in_for_ledger_and_planner(db: asyncpg.Pool, batch_id: int) -> None:
    """What two processes this chain-free test does not run would write for an approved batch:
    the dispatcher's delivery of each withdrawal's hold to the ledger (the signer signs nothing
    the ledger has not held), and the planner's plan (it reads nonce and fees from a chain).
    The end-to-end test with a chain (test_withdrawals_anvil.py) runs both for real."""
    async with db.acquire() as conn, conn.transaction():
        outputs = await conn.fetch(
            "SELECT withdrawal_id, destination, amount FROM batch_outputs WHERE batch_id = $1",
            batch_id,
        )
        await conn.execute(
            "UPDATE ledger_outbox SET delivered_at = now() WHERE idempotency_key = ANY($1::text[])",
            [withdrawal_event_key(r["withdrawal_id"], "requested") for r in outputs],
        )
        plan = plan_for([(r["withdrawal_id"], r["destination"], int(r["amount"])) for r in outputs])
        await conn.execute(
            "UPDATE signer_jobs SET plan = $2::text::jsonb, planned_at = now() WHERE batch_id = $1",
            batch_id,
            json.dumps(plan.to_json()),
        )


async def request_withdrawals(url: str, count: int, tag: str) -> list[int]:
    """Withdrawals of ETH on ethereum-devnet as the ledger submits them: POST /v1/withdrawals."""
    ids = []
    async with aiohttp.ClientSession() as http:
        for n in range(count):
            body = {
                "request_id": f"{tag}-{n}",
                "user_id": ("olga", "pia", "quinn")[n % 3],
                "network": "ethereum-devnet",
                "asset": "ETH",
                "to_address": DESTINATIONS[n % len(DESTINATIONS)],
                "amount": str((n + 1) * 250_000_000_000_000_000),
            }
            async with http.post(
                f"{url}/v1/withdrawals",
                json=body,
                headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
            ) as resp:
                assert resp.status == 201, await resp.text()
                ids.append((await resp.json())["id"])
    return ids
