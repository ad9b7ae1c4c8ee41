"""The signer's Bitcoin path against PostgreSQL: what it refuses and what it never does twice.

No node is needed: the signer never talks to one. Coins are written into the store as the coin
follower writes them; plans as the planner writes them.
"""

from __future__ import annotations

import json

import asyncpg

from chaingate.chains.bitcoin.bech32 import encode_segwit
from chaingate.domain import Network
from chaingate.domain.signing_plan import BitcoinPlan, PlannedCoin
from chaingate.signer.checks import SignerLimit
from chaingate.signer.config import SignerSettings
from chaingate.signer.keystore import KeyRing, hot_key
from chaingate.signer.service import Signer
from chaingate.withdrawals.coins import wallet_address
from harness import devnet_network
from signer_support import SEAL_KEY, approved_batch
from test_bitcoin_hotwallet import DEVNET_HOT_KEY

BTC = "bitcoin-devnet"
DEST = encode_segwit("bcrt", 0, bytes(range(100, 120)))


def network() -> Network:
    return devnet_network(BTC, "http://127.0.0.1:1")


def signer_settings_for(net: Network) -> SignerSettings:
    return SignerSettings(
        database_url="unused",
        networks={BTC: net},
        keys=KeyRing([hot_key(DEVNET_HOT_KEY)]),
        seal_key=SEAL_KEY,
        quorum=2,
        limits={(BTC, "BTC"): SignerLimit(10**9, 10**10)},
    )


def signer(db: asyncpg.Pool, net: Network, name: str = "s1") -> Signer:
    return Signer(db, signer_settings_for(net), holder=name)


async def add_coin(db: asyncpg.Pool, net: Network, n: int, amount: int) -> PlannedCoin:
    assert net.hot_xpub
    address = wallet_address(net.hot_xpub, 0, n)
    txid = f"{n + 1:064x}"
    await db.execute(
        """INSERT INTO wallet_coins (network, txid, vout, amount, script, owner, chain, index,
                                     block_number, block_hash)
           VALUES ($1, $2, 0, $3, $4, 'hot', 0, $5, 1, 'aa')""",
        BTC,
        txid,
        amount,
        address.script,
        n,
    )
    return PlannedCoin(txid, 0, amount, 0, n)


async def plan(
    db: asyncpg.Pool, batch_id: int, coins: list[PlannedCoin], rate: int = 2_000
) -> None:
    body = BitcoinPlan(tuple(coins), rate, 0).to_json()
    await db.execute(
        "UPDATE signer_jobs SET plan = $2::text::jsonb, planned_at = now() WHERE batch_id = $1",
        batch_id,
        json.dumps(body),
    )


async def test_a_coin_is_never_locked_by_two_batches(db: asyncpg.Pool) -> None:
    net = network()
    coin = await add_coin(db, net, 0, 500_000)
    first = await approved_batch(db, net, "BTC", [(DEST, 100_000)], plan=False)
    second = await approved_batch(db, net, "BTC", [(DEST, 200_000)], plan=False)
    await plan(db, first, [coin])
    await plan(db, second, [coin])  # the planner of a second batch chose the same coin
    outcomes = await signer(db, net).sign_once(limit=2)
    assert sorted(o.result for o in outcomes) == ["replanned", "signed"]
    txs = await db.fetch("SELECT id, batch_id, txid FROM withdrawal_txs")
    assert [t["batch_id"] for t in txs] == [first]
    locked = await db.fetch("SELECT locked_by FROM wallet_coins WHERE txid = $1", coin.txid)
    assert [r["locked_by"] for r in locked] == [txs[0]["id"]]
    # the change is our own coin at once (spendable before it is mined), on the change chain
    change = await db.fetchrow("SELECT * FROM wallet_coins WHERE own_change")
    assert change["txid"] == txs[0]["txid"] and change["chain"] == 1
    assert change["script"] == wallet_address(net.hot_xpub or "", 1, 0).script
    # the second batch's plan was cleared: the planner chooses again from what is left
    assert await db.fetchval("SELECT plan FROM signer_jobs WHERE batch_id = $1", second) is None


async def test_a_job_signed_once_is_never_signed_again(db: asyncpg.Pool) -> None:
    net = network()
    coin = await add_coin(db, net, 1, 500_000)
    batch = await approved_batch(db, net, "BTC", [(DEST, 100_000)], plan=False)
    await plan(db, batch, [coin])
    assert [o.result for o in await signer(db, net).sign_once()] == ["signed"]
    # a second signer finding the job again (its completion lost): nothing new is signed
    await db.execute("UPDATE signer_jobs SET done_at = NULL, next_attempt_at = now()")
    assert [o.result for o in await signer(db, net, "s2").sign_once()] == ["done_already"]
    assert await db.fetchval("SELECT count(*) FROM withdrawal_txs") == 1


async def test_a_fee_over_the_approved_cap_is_not_signed_but_alerted(db: asyncpg.Pool) -> None:
    net = network()
    # 40 inputs at the registry's highest rate pay more than the approved 100,000 sat cap
    coins = [await add_coin(db, net, 10 + n, 30_000) for n in range(40)]
    batch = await approved_batch(db, net, "BTC", [(DEST, 700_000)], plan=False)
    await plan(db, batch, coins, rate=net.max_fee_rate)
    assert [o.result for o in await signer(db, net).sign_once()] == ["deferred"]
    assert await db.fetchval("SELECT count(*) FROM withdrawal_txs") == 0
    assert await db.fetchval("SELECT count(*) FROM wallet_coins WHERE locked_by IS NOT NULL") == 0
    alert = await db.fetchrow("SELECT * FROM alerts")
    assert alert["kind"] == "fee_cap_too_low" and "exceeds the approved cap" in alert["message"]


async def test_a_fee_rate_above_the_registry_cap_is_sent_back_to_the_planner(
    db: asyncpg.Pool,
) -> None:
    net = network()
    coin = await add_coin(db, net, 3, 500_000)
    batch = await approved_batch(db, net, "BTC", [(DEST, 100_000)], plan=False)
    await plan(db, batch, [coin], rate=net.max_fee_rate + 1_000)
    assert [o.result for o in await signer(db, net).sign_once()] == ["replanned"]
    assert await db.fetchval("SELECT count(*) FROM withdrawal_txs") == 0
    assert await db.fetchval("SELECT count(*) FROM wallet_coins WHERE locked_by IS NOT NULL") == 0


async def test_a_replacement_that_does_not_beat_the_original_by_bip125_is_not_signed(
    db: asyncpg.Pool,
) -> None:
    from chaingate.signer.replacements import replace_once

    net = network()
    coin = await add_coin(db, net, 60, 500_000)
    batch = await approved_batch(db, net, "BTC", [(DEST, 100_000)], plan=False)
    await plan(db, batch, [coin], rate=2_000)
    s = signer(db, net)
    assert [o.result for o in await s.sign_once()] == ["signed"]
    await db.execute("UPDATE withdrawal_txs SET status = 'broadcast'")
    await db.execute("UPDATE batches SET status = 'broadcast'")
    tx_id = await db.fetchval("SELECT id FROM withdrawal_txs")
    # a hair more fee rate: more fee, but not the incremental relay fee of its own size more
    weak = BitcoinPlan((coin,), 2_001, 0).to_json()
    await db.execute(
        "INSERT INTO signer_replacements (tx_id, plan) VALUES ($1, $2::text::jsonb)",
        tx_id,
        json.dumps(weak),
    )
    assert [o.result for o in await replace_once(s)] == ["deferred"]
    assert await db.fetchval("SELECT count(*) FROM withdrawal_txs") == 1
    # a real bump is signed, and the coin moves over to the replacement
    await db.execute(
        "UPDATE signer_replacements SET plan = $1::text::jsonb, next_attempt_at = now()",
        json.dumps(BitcoinPlan((coin,), 4_000, 0).to_json()),
    )
    assert [o.result for o in await replace_once(s)] == ["signed"]
    rows = await db.fetch("SELECT id, status, replaced_by FROM withdrawal_txs ORDER BY id")
    assert [(r["status"], r["replaced_by"]) for r in rows] == [
        ("replaced", rows[1]["id"]),
        ("signed", None),
    ]
    locked = await db.fetchval("SELECT locked_by FROM wallet_coins WHERE txid = $1", coin.txid)
    assert locked == rows[1]["id"]
