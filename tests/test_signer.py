"""The signer against a real PostgreSQL: what it signs, what it refuses, and nonces under
concurrency. No chain is needed here (the signer never talks to one); the signed bytes are
decoded and their sender recovered. tests/test_withdrawals_anvil.py sends them for real."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes

from chaingate.chains.evm.txbuilder import erc20_transfer_data
from chaingate.devnet import postgres
from chaingate.errors import KeystoreError
from chaingate.settings import PROJECT_ROOT
from chaingate.signer import service as signer_service
from chaingate.signer.config import SignerSettings
from chaingate.signer.service import Signer, allocator_lease_name
from chaingate.store import connect_pool, leases
from signer_support import (
    ETH,
    HOT_ADDRESS,
    HOT_KEY,
    SEAL_KEY,
    approved_batch,
    devnet_networks,
    signer_settings,
)

NETWORKS = devnet_networks()
EVM = NETWORKS["ethereum-devnet"]
ALICE_ADDR = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BOB_ADDR = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


@pytest.fixture(scope="module")
async def signer_dsn(pg_admin_dsn: str) -> AsyncIterator[str]:
    server = postgres.server_of(pg_admin_dsn)
    async with postgres.scratch_database(server, "cg_signer", migrate=True) as dsn:
        yield dsn


@pytest.fixture(scope="module")
async def signer_pool(signer_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect_pool(signer_dsn, max_size=10)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def database(signer_dsn: str) -> str:
    return signer_dsn


@pytest.fixture
async def db(signer_pool: asyncpg.Pool) -> asyncpg.Pool:
    """One database for the module, emptied before each test (a fresh one costs seconds)."""
    await signer_pool.execute(
        "TRUNCATE withdrawal_txs, signer_jobs, approvals, batch_outputs, withdrawal_history,"
        " withdrawals, batches, alerts, leases, ledger_outbox RESTART IDENTITY CASCADE"
    )
    return signer_pool


def signer(database: str, db: asyncpg.Pool, **options: Any) -> Signer:
    return Signer(db, signer_settings(database, NETWORKS, **options))


async def txs(db: asyncpg.Pool, batch_id: int | None = None) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT * FROM withdrawal_txs WHERE ($1::bigint IS NULL OR batch_id = $1) ORDER BY nonce",
        batch_id,
    )


async def job(db: asyncpg.Pool, batch_id: int) -> asyncpg.Record:
    return await db.fetchrow("SELECT * FROM signer_jobs WHERE batch_id = $1", batch_id)


async def alerts(db: asyncpg.Pool, kind: str = "signer_refused") -> list[asyncpg.Record]:
    return await db.fetch("SELECT * FROM alerts WHERE kind = $1", kind)


def decoded(raw_hex: str) -> dict[str, Any]:
    raw = HexBytes(bytes.fromhex(raw_hex))
    assert Account.recover_transaction(raw).lower() == HOT_ADDRESS
    fields = dict(TypedTransaction.from_bytes(raw).as_dict())
    fields["to"] = "0x" + bytes(fields["to"]).hex()
    return fields


async def test_signs_each_output_once_at_consecutive_nonces(
    database: str, db: asyncpg.Pool
) -> None:
    eth = await approved_batch(db, EVM, "ETH", [(ALICE_ADDR, 1 * ETH), (BOB_ADDR, 2 * ETH)])
    nexo = await approved_batch(db, EVM, "NEXO", [(BOB_ADDR, 7 * ETH)])
    s = signer(database, db)
    assert [o.result for o in await s.sign_once()] == ["signed"]
    assert [o.result for o in await s.sign_once()] == ["signed"]
    assert await s.sign_once() == []  # nothing left
    rows = await txs(db)
    assert [r["nonce"] for r in rows] == [0, 1, 2]
    first, second, token = (decoded(r["raw_tx"]) for r in rows)
    assert first["to"].lower() == ALICE_ADDR.lower() and first["value"] == 1 * ETH
    assert second["to"].lower() == BOB_ADDR.lower() and second["value"] == 2 * ETH
    nexo_contract = EVM.asset("NEXO").contract
    assert nexo_contract is not None
    assert token["to"].lower() == nexo_contract and token["value"] == 0
    assert bytes(token["data"]) == erc20_transfer_data(BOB_ADDR, 7 * ETH)
    # Every transaction stays within the approved fee cap.
    for r in rows:
        assert int(r["max_fee_per_gas"]) * r["gas_limit"] <= int(r["fee_cap"])
        assert r["signer_epoch"] >= 1
    for batch_id in (eth, nexo):
        assert (await job(db, batch_id))["done_at"] is not None
    assert await alerts(db) == []


async def test_job_without_a_plan_waits_and_a_malformed_plan_goes_back(
    database: str, db: asyncpg.Pool
) -> None:
    batch_id = await approved_batch(db, EVM, "ETH", [(ALICE_ADDR, ETH)], plan=False)
    s = signer(database, db)
    assert await s.sign_once() == []  # not claimable before the planner ran
    await db.execute(
        """UPDATE signer_jobs SET plan = '{"version": 1, "from_address": "0x00"}', planned_at = now()
            WHERE batch_id = $1""",
        batch_id,
    )
    assert [o.result for o in await s.sign_once()] == ["replanned"]
    assert (await job(db, batch_id))["plan"] is None
    assert await txs(db) == []


async def test_nothing_is_signed_before_the_ledger_holds_the_funds(
    database: str, db: asyncpg.Pool
) -> None:
    batch_id = await approved_batch(db, EVM, "ETH", [(ALICE_ADDR, ETH)], held=False)
    s = signer(database, db)
    assert [o.result for o in await s.sign_once()] == ["deferred"]
    assert await txs(db) == []
    await db.execute(
        """INSERT INTO ledger_outbox (idempotency_key, kind, payload, delivered_at)
           SELECT 'withdrawal:' || id || ':requested', 'withdrawal_event', '{}'::jsonb, now()
             FROM withdrawals WHERE batch_id = $1""",
        batch_id,
    )
    await db.execute("UPDATE signer_jobs SET next_attempt_at = now()")
    assert [o.result for o in await s.sign_once()] == ["signed"]


# --- refusals: nothing signed, the job parked, a critical alert ---------------------------------


async def _refused(
    database: str, db: asyncpg.Pool, batch_id: int, reason: str, **opts: Any
) -> None:
    outcomes = await signer(database, db, **opts).sign_once()
    assert [o.result for o in outcomes] == ["refused"]
    assert await txs(db) == []
    row = await job(db, batch_id)
    assert row["parked_at"] is not None and row["done_at"] is None
    assert row["last_error"].startswith(reason)
    [alert] = await alerts(db)
    assert alert["severity"] == "critical" and alert["details"]["reason"] == reason


async def test_withdrawal_row_edited_after_approval_is_refused(
    database: str, db: asyncpg.Pool
) -> None:
    batch_id = await approved_batch(db, EVM, "ETH", [(ALICE_ADDR, ETH)])
    await db.execute("UPDATE withdrawals SET destination = $1", BOB_ADDR)
    await _refused(database, db, batch_id, "withdrawal_changed")


async def test_output_edited_after_approval_is_refused(database: str, db: asyncpg.Pool) -> None:
    batch_id = await approved_batch(db, EVM, "ETH", [(ALICE_ADDR, ETH)])
    # Both tables edited consistently: only the content hash catches it.
    await db.execute("UPDATE batch_outputs SET destination = $1", BOB_ADDR)
    await db.execute("UPDATE withdrawals SET destination = $1", BOB_ADDR)
    await _refused(database, db, batch_id, "content_hash")


async def test_fee_cap_raised_in_the_database_is_refused(database: str, db: asyncpg.Pool) -> None:
    batch_id = await approved_batch(db, EVM, "ETH", [(ALICE_ADDR, ETH)])
    await db.execute("UPDATE batches SET fee_cap = fee_cap * 100")
    await _refused(database, db, batch_id, "content_hash")


async def test_rehashed_batch_fails_the_makers_seal(database: str, db: asyncpg.Pool) -> None:
    batch_id = await approved_batch(db, EVM, "ETH", [(ALICE_ADDR, ETH)])
    await db.execute("UPDATE batches SET content_hash = repeat('0', 64)")
    await _refused(database, db, batch_id, "maker_seal")


async def test_forged_approval_row_does_not_count(database: str, db: asyncpg.Pool) -> None:
    batch_id = await approved_batch(db, EVM, "ETH", [(ALICE_ADDR, ETH)], approvers=["alice"])
    await db.execute(
        """INSERT INTO approvals (batch_id, content_hash, principal, approved_at, seal)
           SELECT batch_id, content_hash, 'mallory', now(), repeat('ab', 32)
             FROM approvals WHERE batch_id = $1""",
        batch_id,
    )
    await _refused(database, db, batch_id, "quorum")


async def test_makers_own_approval_does_not_count(database: str, db: asyncpg.Pool) -> None:
    batch_id = await approved_batch(
        db, EVM, "ETH", [(ALICE_ADDR, ETH)], approvers=["alice", "mallory-maker"]
    )
    await _refused(database, db, batch_id, "quorum")


async def test_amount_over_the_signers_own_limit_is_refused(
    database: str, db: asyncpg.Pool
) -> None:
    batch_id = await approved_batch(db, EVM, "ETH", [(ALICE_ADDR, 3 * ETH)])
    await _refused(database, db, batch_id, "limit_per_transaction", per_transaction=2 * ETH)


async def test_daily_limit_counts_what_was_signed_in_the_last_day(
    database: str, db: asyncpg.Pool
) -> None:
    await approved_batch(db, EVM, "ETH", [(ALICE_ADDR, 3 * ETH)])
    second = await approved_batch(db, EVM, "ETH", [(BOB_ADDR, 3 * ETH)])
    s = signer(database, db, per_day=5 * ETH)
    assert [o.result for o in await s.sign_once()] == ["signed"]
    assert [o.result for o in await s.sign_once()] == ["refused"]
    assert len(await txs(db)) == 1
    assert (await job(db, second))["last_error"].startswith("limit_per_day")


# --- nonces under concurrency and crashes ------------------------------------------------------


async def test_two_signers_never_use_one_nonce(database: str, db: asyncpg.Pool) -> None:
    batches = [await approved_batch(db, EVM, "ETH", [(ALICE_ADDR, ETH)] * 2) for _ in range(6)]
    first, second = signer(database, db), signer(database, db)

    async def drain(s: Signer) -> None:
        while (await db.fetchval("SELECT count(*) FROM signer_jobs WHERE done_at IS NULL")) > 0:
            await s.sign_once()
            await asyncio.sleep(0)

    await asyncio.wait_for(asyncio.gather(drain(first), drain(second)), timeout=60)
    rows = await txs(db)
    assert [r["nonce"] for r in rows] == list(range(12))
    assert sorted({r["batch_id"] for r in rows}) == batches
    assert len({r["txid"] for r in rows}) == 12


async def test_allocator_held_elsewhere_defers_the_job(database: str, db: asyncpg.Pool) -> None:
    await approved_batch(db, EVM, "ETH", [(ALICE_ADDR, ETH)])
    other = await leases.acquire(db, allocator_lease_name(EVM.name, HOT_ADDRESS), "other", 30)
    assert other is not None
    s = signer(database, db)
    assert [o.result for o in await s.sign_once()] == ["deferred"]
    assert await txs(db) == []
    await leases.release(db, other)
    await asyncio.sleep(1.1)  # the deferral
    assert [o.result for o in await s.sign_once()] == ["signed"]


async def test_allocator_deposed_before_the_write_records_nothing(
    database: str, db: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lease is taken over between acquire and the checked write (a pause, a slow disk):
    the fencing check refuses the write, so nothing is signed under a stale epoch."""
    await approved_batch(db, EVM, "ETH", [(ALICE_ADDR, ETH)])
    real_check = leases.check

    async def taken_over_first(conn: asyncpg.Connection, lease: leases.Lease) -> None:
        await db.execute("UPDATE leases SET expires_at = now() WHERE name = $1", lease.name)
        assert await leases.acquire(db, lease.name, "usurper", 30) is not None
        await real_check(conn, lease)

    monkeypatch.setattr(signer_service.leases, "check", taken_over_first)
    s = signer(database, db)
    assert [o.result for o in await s.sign_once()] == ["deferred"]
    assert await txs(db) == []
    monkeypatch.setattr(signer_service.leases, "check", real_check)
    await db.execute("UPDATE leases SET expires_at = now()")
    await db.execute("UPDATE signer_jobs SET next_attempt_at = now()")
    assert [o.result for o in await s.sign_once()] == ["signed"]
    assert [r["nonce"] for r in await txs(db)] == [0]


async def test_signer_crashed_mid_job_is_resumed_with_the_same_nonce(
    database: str, db: asyncpg.Pool
) -> None:
    await approved_batch(db, EVM, "ETH", [(ALICE_ADDR, ETH)])
    crashed = signer(database, db, lease_seconds=0.3)
    assert len(await crashed._queue.claim(1)) == 1  # claimed, then "killed" before signing
    survivor = signer(database, db)
    assert await survivor.sign_once() == []  # still leased
    await asyncio.sleep(0.4)
    assert [o.result for o in await survivor.sign_once()] == ["signed"]
    assert [r["nonce"] for r in await txs(db)] == [0]


async def test_chain_nonce_above_the_records_is_followed_and_alerted(
    database: str, db: asyncpg.Pool
) -> None:
    await approved_batch(db, EVM, "ETH", [(ALICE_ADDR, ETH)], chain_nonce=5)
    await approved_batch(db, EVM, "ETH", [(ALICE_ADDR, ETH)], chain_nonce=9)
    s = signer(database, db)
    await s.sign_once()
    await s.sign_once()
    assert [r["nonce"] for r in await txs(db)] == [5, 9]
    [alert] = await alerts(db, "hot_key_used_elsewhere")
    assert alert["severity"] == "critical"


# --- the signer's own database role -----------------------------------------------------------


@pytest.fixture
async def signer_role_dsn(database: str, db: asyncpg.Pool) -> AsyncIterator[str]:
    """deploy/postgres/signer_role.sql applied under a unique role name, with a login."""
    role = f"cg_signer_{uuid.uuid4().hex[:8]}"
    script = (PROJECT_ROOT / "deploy" / "postgres" / "signer_role.sql").read_text()
    await db.execute(script.replace("chaingate_signer", role))
    await db.execute(f"ALTER ROLE {role} LOGIN PASSWORD 'signer-test-pw'")
    parts = urlsplit(database)
    netloc = f"{role}:signer-test-pw@{parts.hostname}:{parts.port or 5432}"
    try:
        yield urlunsplit(parts._replace(netloc=netloc))
    finally:
        await db.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")


async def test_signer_role_may_sign_and_nothing_else(
    database: str, db: asyncpg.Pool, signer_role_dsn: str
) -> None:
    await approved_batch(db, EVM, "ETH", [(ALICE_ADDR, ETH)])
    refused = await approved_batch(db, EVM, "ETH", [(BOB_ADDR, ETH)], approvers=["alice"])
    own = await connect_pool(signer_role_dsn, max_size=2)
    try:
        s = Signer(own, signer_settings(signer_role_dsn, NETWORKS))
        assert [o.result for o in await s.sign_once()] == ["signed"]
        assert [o.result for o in await s.sign_once()] == ["refused"]  # alert + park allowed
        assert (await job(db, refused))["parked_at"] is not None
        forbidden = [
            "UPDATE withdrawals SET amount = 1",
            "UPDATE batches SET status = 'approved'",
            "UPDATE batch_outputs SET amount = 1",
            "INSERT INTO approvals (batch_id, content_hash, principal, approved_at, seal)"
            " VALUES (1, 'x', 'x', now(), 'x')",
            "SELECT payload FROM ledger_outbox",
            "SELECT * FROM audit_log",
            "UPDATE withdrawal_txs SET raw_tx = 'ff'",
            "DELETE FROM withdrawal_txs",
            "SELECT * FROM alerts",
        ]
        async with own.acquire() as conn:
            for statement in forbidden:
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(statement)
    finally:
        await own.close()
    assert len(await txs(db)) == 1


async def test_signer_role_may_sign_a_bitcoin_batch_and_lock_its_coins(
    db: asyncpg.Pool, signer_role_dsn: str
) -> None:
    from test_bitcoin_signer import DEST, add_coin, network, plan, signer_settings_for

    net = network()
    coin = await add_coin(db, net, 0, 500_000)
    batch_id = await approved_batch(db, net, "BTC", [(DEST, 100_000)], plan=False)
    await plan(db, batch_id, [coin])
    own = await connect_pool(signer_role_dsn, max_size=2)
    try:
        s = Signer(own, signer_settings_for(net))
        assert [o.result for o in await s.sign_once()] == ["signed"]
        async with own.acquire() as conn:
            for statement in (
                "UPDATE wallet_coins SET amount = 1",
                "UPDATE wallet_coins SET block_number = 1",
                "DELETE FROM wallet_coins",
                "UPDATE wallet_addresses SET used = true",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(statement)
    finally:
        await own.close()
    assert await db.fetchval("SELECT count(*) FROM wallet_coins WHERE locked_by IS NOT NULL") == 1


async def test_a_signer_with_another_seal_key_refuses_alerts_and_signs_nothing(
    database: str, db: asyncpg.Pool
) -> None:
    """The API sealed the batch and its approvals with one key; a signer started with another
    (a misconfiguration, or an attacker's signer) cannot verify a single seal."""
    batch_id = await approved_batch(db, EVM, "ETH", [(ALICE_ADDR, ETH)])
    settings = dataclasses.replace(
        signer_settings(database, NETWORKS), seal_key=b"another-seal-key-0123456789abcdefgh"
    )
    assert [o.result for o in await Signer(db, settings).sign_once()] == ["refused"]
    assert await txs(db) == []
    assert (await job(db, batch_id))["parked_at"] is not None
    [alert] = await alerts(db)
    assert alert["severity"] == "critical" and alert["details"]["reason"] == "maker_seal"


def test_a_signer_without_the_hot_addresss_key_refuses_to_start(tmp_path: Path) -> None:
    """A second signer given a keystore of another address (here anvil's account 0) does not
    start: it could sign nothing, and must not seem to be serving. (Keys are required for the
    networks the signer has limits for: signer/config.signed_networks.)"""
    limits = tmp_path / "limits.toml"
    limits.write_text('[ethereum-devnet.ETH]\nper_transaction = "1"\nper_day = "1"\n')
    env = {
        "CHAINGATE_SIGNER_LIMITS": str(limits),
        "CHAINGATE_DATABASE_URL": "postgresql://signer@127.0.0.1:1/none",
        "CHAINGATE_CHAINS_DIR": str(PROJECT_ROOT / "chains" / "devnet"),
        "CHAINGATE_NETWORKS": "ethereum-devnet",
        "CHAINGATE_APPROVAL_SEAL_KEY": SEAL_KEY.decode(),
        "CHAINGATE_SIGNER_DEVNET_KEYS": OTHER_KEY,
    }
    with pytest.raises(KeystoreError, match=f"no key for {HOT_ADDRESS}"):
        SignerSettings.from_env(env)
    assert SignerSettings.from_env({**env, "CHAINGATE_SIGNER_DEVNET_KEYS": HOT_KEY.hex()}).keys


# anvil's account 0 of "test test ... junk" (public test key): not the devnet hot address.
OTHER_KEY = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
