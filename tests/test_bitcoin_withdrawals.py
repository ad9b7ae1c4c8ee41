"""Bitcoin withdrawal batches on litecoind regtest: planner, the signer, broadcaster, tracker.

A batch of five withdrawals to five script types becomes ONE transaction with exactly those
outputs plus change to our own change address; the destinations receive their amounts to the
satoshi; the hot wallet's coins in the store equal the node's ``scantxoutset``; the batch is
confirmed once, also after the block that held it left the chain.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from chaindrivers.bitcoin import BitcoinDriver, ltc_rpc, node_unspent
from chaingate.chains.bitcoin.addresses import BitcoinAddresses
from chaingate.chains.bitcoin.bech32 import encode_segwit
from chaingate.chains.bitcoin.coinselect import Coin
from chaingate.chains.bitcoin.rawtx import decode_tx
from chaingate.chains.bitcoin.rpc import BitcoinRpc
from chaingate.chains.bitcoin.txbuilder import TxOut, build_batch, estimate_vsize, fee_for
from chaingate.devnet.bitcoin import LitecoinRpc
from chaingate.devnet.manager import DevnetState
from chaingate.domain import Network
from chaingate.domain.signing_plan import BitcoinPlan, PlannedCoin
from chaingate.signer.bitcoin import sign_p2wpkh
from chaingate.signer.checks import SignerLimit
from chaingate.signer.config import SignerSettings
from chaingate.signer.hotwallet import hot_wallet
from chaingate.signer.keystore import KeyRing, hot_key
from chaingate.signer.service import Signer
from chaingate.withdrawals.bitcoin_tracker import BitcoinBroadcaster
from chaingate.withdrawals.coins import wallet_address
from harness import SERVICE_TOKEN, Gateway, devnet_network, gateway
from signer_support import SEAL_KEY, approved_batch
from test_bitcoin_destinations import b58check
from test_bitcoin_hotwallet import devnet_hot_account

BTC = "bitcoin-devnet"
COIN = 100_000_000


@pytest.fixture
async def ltc(devnet: DevnetState) -> AsyncIterator[LitecoinRpc]:
    async with ltc_rpc(devnet) as rpc:
        await rpc.mine(1)
        yield rpc


@pytest.fixture
async def network(devnet: DevnetState, ltc: LitecoinRpc) -> Network:
    assert devnet.ltc_rpc_url is not None
    height = int(await ltc.call("getblockcount", wallet=False))
    return devnet_network(BTC, devnet.ltc_rpc_url, start_height=height + 1, confirmations=2)


@pytest.fixture
async def gw(network: Network, db: asyncpg.Pool, ledger_url: str) -> AsyncIterator[Gateway]:
    async with gateway(network, db, ledger_url) as gw:
        yield gw


def own_wallet(network: Network, account: int) -> tuple[Network, bytes]:
    xpub, key = devnet_hot_account(account)
    return dataclasses.replace(network, hot_xpub=xpub), key


def signer_for(db: asyncpg.Pool, network: Network, key: bytes) -> Signer:
    settings = SignerSettings(
        database_url="unused",
        networks={BTC: network},
        keys=KeyRing([hot_key(key)]),
        seal_key=SEAL_KEY,
        quorum=2,
        limits={(BTC, "BTC"): SignerLimit(10 * COIN, 100 * COIN)},
    )
    return Signer(db, settings, holder="test-signer")


async def hot_unspent(db: asyncpg.Pool) -> dict[tuple[str, int], int]:
    rows = await db.fetch(
        """SELECT txid, vout, amount::text AS amount FROM wallet_coins
            WHERE block_number IS NOT NULL AND spent_block_number IS NULL"""
    )
    return {(r["txid"], r["vout"]): int(r["amount"]) for r in rows}


def decode_inputs(raw: str) -> tuple[tuple[str, int], ...]:
    return decode_tx(bytes.fromhex(raw)).spends


async def statuses(db: asyncpg.Pool, batch_id: int) -> list[str]:
    rows = await db.fetch("SELECT status FROM withdrawals WHERE batch_id = $1", batch_id)
    return sorted({r["status"] for r in rows})


async def run_until(
    gw: Gateway,
    ltc: LitecoinRpc,
    signer: Signer,
    broadcaster: BitcoinBroadcaster,
    done: Any,
    rounds: int = 40,
) -> None:
    for _ in range(rounds):
        await gw.sync()
        await signer.sign_once()
        await broadcaster._pass()
        if await done():
            return
        await ltc.mine(1)
    raise AssertionError("the batch did not get there")


async def run_unmined(
    gw: Gateway, signer: Signer, broadcaster: BitcoinBroadcaster, done: Any
) -> None:
    """Run the signer and the broadcaster without mining a block until ``done()``, for at
    most six seconds (the batch sits in the mempool, past the network's ``replace_after``)."""
    for _ in range(60):
        await gw.sync()
        await signer._pass()
        await broadcaster._pass()
        if await done():
            return
        await asyncio.sleep(0.1)


async def confirmed_batch(
    gw: Gateway, ltc: LitecoinRpc, network: Network, key: bytes, destinations: list[tuple[str, int]]
) -> tuple[int, asyncpg.Record, BitcoinBroadcaster]:
    """An approved batch paying ``destinations``, signed, sent and mined until confirmed: its
    id, its one transaction row, and the broadcaster that tracks it."""
    assert gw.pool is not None
    batch_id = await approved_batch(gw.db, network, "BTC", destinations, plan=False)
    signer = signer_for(gw.db, network, key)
    broadcaster = BitcoinBroadcaster(gw.db, network, BitcoinRpc(gw.pool), track_every=0.01)

    async def confirmed() -> bool:
        return await statuses(gw.db, batch_id) == ["confirmed"]

    await run_until(gw, ltc, signer, broadcaster, confirmed)
    [tx] = await gw.db.fetch("SELECT * FROM withdrawal_txs WHERE batch_id = $1", batch_id)
    return batch_id, tx, broadcaster


async def test_a_batch_of_five_script_types_is_one_transaction_confirmed_once(
    gw: Gateway, ltc: LitecoinRpc, network: Network, db: asyncpg.Pool
) -> None:
    network, key = own_wallet(network, 3)
    assert gw.pool is not None and network.hot_xpub
    for index, sats in ((0, 300_000), (1, 200_000), (2, 150_000)):
        await ltc.send_to_script(
            bytes.fromhex(wallet_address(network.hot_xpub, 0, index).script), sats
        )
    await ltc.mine(1)
    body20, body32 = bytes(range(40, 60)), bytes(range(60, 92))
    destinations = [
        (encode_segwit("bcrt", 0, body20), 41_001),  # P2WPKH
        (encode_segwit("bcrt", 1, body32), 42_002),  # P2TR
        (b58check(0x3A, body20), 43_003),  # P2SH, litecoind's version
        (b58check(0x6F, body20), 44_004),  # P2PKH
        (encode_segwit("bcrt", 0, body32), 45_005),  # P2WSH
    ]
    batch_id, tx, broadcaster = await confirmed_batch(gw, ltc, network, key, destinations)
    assert tx["withdrawal_id"] is None and tx["status"] == "confirmed"
    decoded = decode_tx(bytes.fromhex(tx["raw_tx"]))
    codec = BitcoinAddresses(network)
    scripts = [codec.match_key(d) for d, _ in destinations]
    # exactly the five outputs, in withdrawal order, then change to our change chain
    assert [(o.script, o.sats) for o in decoded.outputs[:5]] == [
        (s, a) for s, (_, a) in zip(scripts, destinations, strict=True)
    ]
    [change] = decoded.outputs[5:]
    assert change.script == wallet_address(network.hot_xpub, 1, 0).script
    # what the destinations hold on chain, to the satoshi
    on_chain = await node_unspent(ltc, scripts)
    assert sorted(on_chain.values()) == sorted(a for _, a in destinations)
    # the fee the ledger hears equals inputs less outputs, and every withdrawal has the txid
    rows = await db.fetch(
        "SELECT txid, fee::text AS fee FROM withdrawals WHERE batch_id = $1", batch_id
    )
    assert {(r["txid"], r["fee"]) for r in rows} == {(decoded.txid, str(tx["fee"]))}
    # the store's hot wallet coins equal the node's UTXO set of the hot wallet's scripts
    hot_scripts = [r["script"] for r in await db.fetch("SELECT script FROM wallet_addresses")]
    assert await hot_unspent(db) == await node_unspent(ltc, hot_scripts, network.start_height or 0)
    batch = await db.fetchrow("SELECT status FROM batches WHERE id = $1", batch_id)
    assert batch["status"] == "completed"

    # The block with the batch leaves the chain after it was confirmed (a competing chain
    # without it, made visible by generateblock): the node puts the transaction back into its
    # mempool, it is mined again, and the ledger heard of each withdrawal's confirmation once.
    spent_in = await db.fetchval(
        "SELECT DISTINCT spent_block_hash FROM wallet_coins WHERE spent_txid = $1", decoded.txid
    )
    await ltc.invalidate(spent_in)
    for _ in range(4):
        await ltc.call("generateblock", await ltc.mining_address(), [], wallet=False)
    assert decoded.txid in await ltc.call("getrawmempool", wallet=False)
    await gw.sync()
    await broadcaster._pass()
    assert (
        await db.fetchval(
            "SELECT count(*) FROM wallet_coins WHERE spent_txid = $1 AND spent_block_number IS NOT NULL",
            decoded.txid,
        )
        == 0
    )
    await ltc.mine(1)
    await gw.sync()
    await broadcaster._pass()
    assert await db.fetchval(
        "SELECT count(*) FROM wallet_coins WHERE spent_txid = $1 AND spent_block_number IS NOT NULL",
        decoded.txid,
    ) == len(decode_inputs(tx["raw_tx"]))
    assert await hot_unspent(db) == await node_unspent(ltc, hot_scripts, network.start_height or 0)
    keys = [
        r["idempotency_key"] for r in await db.fetch("SELECT idempotency_key FROM ledger_outbox")
    ]
    assert sorted(k for k in keys if k.endswith(":confirmed")) == sorted(
        f"withdrawal:{r['id']}:confirmed"
        for r in await db.fetch("SELECT id FROM withdrawals WHERE batch_id = $1", batch_id)
    )
    assert await statuses(db, batch_id) == ["confirmed"]


async def confirmed_keys(db: asyncpg.Pool) -> list[str]:
    keys = [
        r["idempotency_key"] for r in await db.fetch("SELECT idempotency_key FROM ledger_outbox")
    ]
    return sorted(k for k in keys if k.endswith(":confirmed"))


async def test_a_confirmed_batch_the_node_forgot_after_a_reorg_is_rebroadcast_and_confirmed_once(
    gw: Gateway, ltc: LitecoinRpc, network: Network, db: asyncpg.Pool, devnet: DevnetState
) -> None:
    network, key = own_wallet(network, 6)
    assert gw.pool is not None and network.hot_xpub
    driver = BitcoinDriver(devnet, ltc)
    await ltc.send_to_script(bytes.fromhex(wallet_address(network.hot_xpub, 0, 1).script), 600_000)
    await ltc.mine(1)
    destinations = [
        (encode_segwit("bcrt", 0, bytes(range(90, 110))), 111_111),
        (encode_segwit("bcrt", 1, bytes(range(110, 142))), 222_222),
    ]
    batch_id, tx, broadcaster = await confirmed_batch(gw, ltc, network, key, destinations)
    told = [f"withdrawal:{r['id']}:confirmed" for r in await db.fetch(
        "SELECT id FROM withdrawals WHERE batch_id = $1 ORDER BY id", batch_id
    )]  # fmt: skip
    assert await confirmed_keys(db) == told
    # The row stays watched while a reorg can still take the block away.
    assert tx["status"] == "confirmed" and tx["done_at"] is None

    # The block with the batch leaves the chain, and the node does NOT keep the transaction:
    # it goes back to the mempool and expires there. Only the gateway has the bytes now.
    block = await db.fetchval("SELECT block_number FROM withdrawal_txs WHERE id = $1", tx["id"])
    await driver.orphan(block - 1, longer_by=2)
    await driver.evict(tx["txid"])
    for txid, vout in decode_inputs(tx["raw_tx"]):  # unspent on the node's chain again
        assert await ltc.call("gettxout", txid, vout, False, wallet=False) is not None
    await gw.sync()
    await broadcaster._pass()
    assert tx["txid"] in await ltc.call("getrawmempool", wallet=False)  # our stored bytes
    [alert] = [a for a in await gw.alerts() if a["txid"] == tx["txid"]]
    assert (alert["kind"], alert["severity"]) == (
        "withdrawal_reorged_after_confirmation",
        "critical",
    )

    # Mined again, once: the destinations hold their amounts once, the ledger heard nothing new.
    await ltc.mine(1)
    for _ in range(3):
        await gw.sync()
        await broadcaster._pass()
        await ltc.mine(1)
    await gw.sync()
    await broadcaster._pass()
    mined = await ltc.call("getrawtransaction", tx["txid"], True, wallet=False)
    assert mined["confirmations"] >= 4
    codec = BitcoinAddresses(network)
    on_chain = await node_unspent(ltc, [codec.match_key(d) for d, _ in destinations])
    assert sorted(on_chain.values()) == [a for _, a in destinations]
    row = await db.fetchrow("SELECT * FROM withdrawal_txs WHERE id = $1", tx["id"])
    assert row["block_number"] > block and row["block_hash"] == mined["blockhash"]
    assert await statuses(db, batch_id) == ["confirmed"]
    assert await confirmed_keys(db) == told
    assert (
        await db.fetchval("SELECT count(*) FROM withdrawal_txs WHERE batch_id = $1", batch_id) == 1
    )


async def test_a_stuck_batch_is_replaced_by_rbf_and_confirmed_once(
    gw: Gateway, ltc: LitecoinRpc, network: Network, db: asyncpg.Pool
) -> None:
    network, key = own_wallet(network, 4)
    assert gw.pool is not None and network.hot_xpub
    network = dataclasses.replace(network, replace_after=0.5)
    await ltc.send_to_script(bytes.fromhex(wallet_address(network.hot_xpub, 0, 9).script), 500_000)
    await ltc.mine(1)
    destination = encode_segwit("bcrt", 0, bytes(range(7, 27)))
    batch_id = await approved_batch(db, network, "BTC", [(destination, 123_456)], plan=False)
    signer = signer_for(db, network, key)
    broadcaster = BitcoinBroadcaster(db, network, BitcoinRpc(gw.pool), track_every=0.01)

    async def replaced() -> bool:
        rows = await db.fetch("SELECT status FROM withdrawal_txs WHERE batch_id = $1", batch_id)
        return sorted(r["status"] for r in rows) == ["broadcast", "replaced"]

    # No block is mined while the batch waits: it is stuck, and gets replaced.
    await run_unmined(gw, signer, broadcaster, replaced)
    assert await replaced()
    old, new = await db.fetch(
        "SELECT txid, raw_tx FROM withdrawal_txs WHERE batch_id = $1 ORDER BY id", batch_id
    )
    mempool = await ltc.call("getrawmempool", wallet=False)
    assert new["txid"] in mempool and old["txid"] not in mempool  # BIP125: the node took it
    first, second = decode_tx(bytes.fromhex(old["raw_tx"])), decode_tx(bytes.fromhex(new["raw_tx"]))
    assert first.outputs[0] == second.outputs[0]  # the same payment
    assert set(first.spends) <= set(second.spends)
    assert sum(o.sats for o in second.outputs) < sum(o.sats for o in first.outputs)  # more fee

    async def confirmed() -> bool:
        return await statuses(db, batch_id) == ["confirmed"]

    await run_until(gw, ltc, signer, broadcaster, confirmed)
    withdrawal = await db.fetchrow(
        "SELECT txid, fee::text AS fee FROM withdrawals WHERE batch_id = $1", batch_id
    )
    spent = sum(
        int(r["amount"])
        for r in await db.fetch("SELECT txid, vout, amount::text AS amount FROM wallet_coins")
        if (r["txid"], r["vout"]) in second.spends
    )
    assert withdrawal["txid"] == new["txid"]
    assert int(withdrawal["fee"]) == spent - sum(o.sats for o in second.outputs)
    keys = [
        r["idempotency_key"] for r in await db.fetch("SELECT idempotency_key FROM ledger_outbox")
    ]
    assert len([k for k in keys if k.endswith(":confirmed")]) == 1


async def test_a_stuck_batch_the_fee_cap_cannot_bump_raises_a_critical_alert_and_signs_nothing(
    gw: Gateway, ltc: LitecoinRpc, network: Network, db: asyncpg.Pool
) -> None:
    network, key = own_wallet(network, 7)
    assert gw.pool is not None and network.hot_xpub
    # One input, one payment and change at the 1 sat/vB floor pay about 141 sat; a BIP125
    # replacement must add at least as much again, which a cap of 200 sat does not allow.
    btc = network.asset("BTC")
    assert btc.withdrawal_limits is not None
    capped = dataclasses.replace(
        btc, withdrawal_limits=dataclasses.replace(btc.withdrawal_limits, fee_cap=200)
    )
    network = dataclasses.replace(network, replace_after=0.5, assets=(capped,))
    await ltc.send_to_script(bytes.fromhex(wallet_address(network.hot_xpub, 0, 4).script), 300_000)
    await ltc.mine(1)
    destination = encode_segwit("bcrt", 0, bytes(range(150, 170)))
    batch_id = await approved_batch(db, network, "BTC", [(destination, 77_777)], plan=False)
    signer = signer_for(db, network, key)
    broadcaster = BitcoinBroadcaster(db, network, BitcoinRpc(gw.pool), track_every=0.01)

    async def stuck_alerts() -> list[dict[str, Any]]:
        resp = await gw.api.get(
            "/v1/alerts",
            params={"kind": "withdrawal_stuck", "severity": "critical"},
            headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
        )
        assert resp.status == 200, await resp.text()
        return list((await resp.json())["alerts"])

    # No block is mined while the batch waits: it is stuck, and the cap leaves no room.
    await run_unmined(gw, signer, broadcaster, stuck_alerts)
    [tx] = await db.fetch("SELECT * FROM withdrawal_txs WHERE batch_id = $1", batch_id)
    [alert] = await stuck_alerts()
    assert alert["network"] == BTC and alert["txid"] == tx["txid"]
    assert "cannot be bumped" in alert["message"] and "200" in alert["message"]
    assert await db.fetchval("SELECT count(*) FROM signer_replacements") == 0
    assert tx["txid"] in await ltc.call("getrawmempool", wallet=False)

    # Asked anyway (a planner that ignores the cap): the signer signs nothing beyond it.
    inputs = decode_inputs(tx["raw_tx"])
    spent = [
        r
        for r in await db.fetch(
            "SELECT txid, vout, amount::text AS amount, chain, index FROM wallet_coins"
        )
        if (r["txid"], r["vout"]) in inputs
    ]
    greedy = BitcoinPlan(
        tuple(PlannedCoin(r["txid"], r["vout"], int(r["amount"]), r["chain"], r["index"])
              for r in spent),
        10_000,  # 10 sat/vB: within the registry's rates, far beyond the batch's fee cap
        0,
    )  # fmt: skip
    await db.execute(
        "INSERT INTO signer_replacements (tx_id, plan) VALUES ($1, $2::text::jsonb)",
        tx["id"],
        json.dumps(greedy.to_json()),
    )
    for _ in range(3):
        await signer._pass()
    assert (
        await db.fetchval("SELECT count(*) FROM withdrawal_txs WHERE batch_id = $1", batch_id) == 1
    )
    fee = sum(int(r["amount"]) for r in spent) - sum(
        o.sats for o in decode_tx(bytes.fromhex(tx["raw_tx"])).outputs
    )
    assert 0 < fee <= 200

    # The original is mined as it is: confirmed once, at its own fee.
    async def confirmed() -> bool:
        return await statuses(db, batch_id) == ["confirmed"]

    await run_until(gw, ltc, signer, broadcaster, confirmed)
    assert await db.fetchval("SELECT fee FROM withdrawals WHERE batch_id = $1", batch_id) == fee
    assert len(await confirmed_keys(db)) == 1


async def test_a_stuck_batch_whose_change_a_later_batch_spends_is_bumped_through_that_batch(
    gw: Gateway, ltc: LitecoinRpc, network: Network, db: asyncpg.Pool
) -> None:
    network, key = own_wallet(network, 8)
    assert gw.pool is not None and network.hot_xpub
    await ltc.send_to_script(bytes.fromhex(wallet_address(network.hot_xpub, 0, 2).script), 500_000)
    await ltc.mine(1)
    signer = signer_for(db, network, key)
    broadcaster = BitcoinBroadcaster(db, network, BitcoinRpc(gw.pool), track_every=0.01)
    first = await approved_batch(
        db, network, "BTC", [(encode_segwit("bcrt", 0, bytes(range(20))), 100_000)], plan=False
    )

    async def sent(batch_id: int) -> bool:
        return await statuses(db, batch_id) == ["broadcast"]

    await run_unmined(gw, signer, broadcaster, lambda: sent(first))
    # The only coin left is the first batch's unconfirmed change: the second batch spends it.
    second = await approved_batch(
        db, network, "BTC", [(encode_segwit("bcrt", 0, bytes(range(5, 25))), 200_000)], plan=False
    )
    await run_unmined(gw, signer, broadcaster, lambda: sent(second))
    parent, child = await db.fetch(
        "SELECT id, txid, raw_tx FROM withdrawal_txs WHERE batch_id = ANY($1) ORDER BY id",
        [first, second],
    )
    assert (parent["txid"], 1) in decode_inputs(child["raw_tx"])
    # Now both are stuck.
    network = dataclasses.replace(network, replace_after=0.5)
    broadcaster = BitcoinBroadcaster(db, network, BitcoinRpc(gw.pool), track_every=0.01)
    await asyncio.sleep(0.5)

    async def child_replaced() -> bool:
        rows = await db.fetch("SELECT status FROM withdrawal_txs WHERE batch_id = $1", second)
        return sorted(r["status"] for r in rows) == ["broadcast", "replaced"]

    await run_unmined(gw, signer, broadcaster, child_replaced)
    # The parent is not replaced (that would evict the second batch): a warning says so, and
    # the second batch's replacement pays for both (child pays for parent).
    [alert] = [a for a in await gw.alerts() if a["txid"] == parent["txid"]]
    assert (alert["kind"], alert["severity"]) == ("withdrawal_stuck", "warning")
    assert f"batch {second} " in alert["message"] and "not replaced" in alert["message"]
    assert not [a for a in await gw.alerts() if a["severity"] == "critical"]
    rows = await db.fetch("SELECT status FROM withdrawal_txs WHERE batch_id = $1", first)
    assert [r["status"] for r in rows] == ["broadcast"]
    [bumped] = await db.fetch(
        "SELECT txid, raw_tx FROM withdrawal_txs WHERE batch_id = $1 AND status = 'broadcast'",
        second,
    )
    mempool = await ltc.call("getrawmempool", wallet=False)
    assert parent["txid"] in mempool and bumped["txid"] in mempool
    assert child["txid"] not in mempool
    amounts = {
        (r["txid"], r["vout"]): int(r["amount"])
        for r in await db.fetch("SELECT txid, vout, amount::text AS amount FROM wallet_coins")
    }

    def fee_and_vsize(raw: str) -> tuple[int, int]:
        tx = decode_tx(bytes.fromhex(raw))
        fee = sum(amounts[s] for s in tx.spends) - sum(o.sats for o in tx.outputs)
        return fee, estimate_vsize(len(tx.spends), [bytes.fromhex(o.script) for o in tx.outputs])

    (p_fee, p_size), (c_fee, c_size) = (
        fee_and_vsize(parent["raw_tx"]),
        fee_and_vsize(child["raw_tx"]),
    )
    b_fee, b_size = fee_and_vsize(bumped["raw_tx"])
    old_rate = (p_fee + c_fee) * 1000 // (p_size + c_size)
    assert (p_fee + b_fee) * 1000 >= (old_rate + 1_000) * (p_size + b_size)
    assert b_fee > c_fee + fee_for(b_size, 1_000)  # more than its own BIP125 minimum

    async def both_confirmed() -> bool:
        return await statuses(db, first) == await statuses(db, second) == ["confirmed"]

    await run_until(gw, ltc, signer, broadcaster, both_confirmed)
    assert len(await confirmed_keys(db)) == 2


async def test_a_batch_the_hot_wallet_cannot_pay_waits_with_a_critical_alert(
    gw: Gateway, network: Network, db: asyncpg.Pool
) -> None:
    assert gw.pool is not None
    destination = encode_segwit("bcrt", 0, bytes(range(3, 23)))
    batch_id = await approved_batch(db, network, "BTC", [(destination, 9 * COIN)], plan=False)
    broadcaster = BitcoinBroadcaster(db, network, BitcoinRpc(gw.pool), track_every=0.01)
    await gw.sync()
    assert await broadcaster.planner.plan_once() == 0
    assert await db.fetchval("SELECT plan FROM signer_jobs WHERE batch_id = $1", batch_id) is None
    alert = await db.fetchrow("SELECT * FROM alerts")
    assert (alert["kind"], alert["severity"]) == ("hot_wallet_insufficient", "critical")


async def test_a_batch_whose_input_a_foreign_transaction_spent_fails_and_returns_the_funds(
    gw: Gateway, ltc: LitecoinRpc, network: Network, db: asyncpg.Pool
) -> None:
    network, key = own_wallet(network, 5)
    assert gw.pool is not None and network.hot_xpub
    await ltc.send_to_script(bytes.fromhex(wallet_address(network.hot_xpub, 0, 0).script), 400_000)
    await ltc.mine(1)
    destination = encode_segwit("bcrt", 0, bytes(range(33, 53)))
    batch_id = await approved_batch(db, network, "BTC", [(destination, 100_000)], plan=False)
    signer = signer_for(db, network, key)
    broadcaster = BitcoinBroadcaster(db, network, BitcoinRpc(gw.pool), track_every=0.01)
    await gw.sync()
    await broadcaster.follower.follow_once()
    assert await broadcaster.planner.plan_once() == 1
    assert [o.result for o in await signer.sign_once()] == ["signed"]
    # Before our bytes go out, the same coin is spent elsewhere (the hot key used outside
    # chaingate) and mined: our batch can never be mined.
    hot = hot_wallet(network, KeyRing([hot_key(key)]))
    [coin] = await db.fetch("SELECT txid, vout FROM wallet_coins WHERE NOT own_change")
    theirs = build_batch(
        [TxOut(390_000, bytes.fromhex("0014" + "ee" * 20))],
        (),
        change_script=hot.change_script(7),
        fee_rate=5_000,
        fee_cap=10_000,
        required=[Coin(coin["txid"], coin["vout"], 400_000, hot.script(0, 0), 0, 0, True)],
    )
    foreign = sign_p2wpkh(theirs, hot.key)
    await ltc.call("sendrawtransaction", foreign.raw.hex(), wallet=False)

    async def failed() -> bool:
        return await statuses(db, batch_id) == ["failed"]

    await run_until(gw, ltc, signer, broadcaster, failed)
    row = await db.fetchrow("SELECT * FROM withdrawals WHERE batch_id = $1", batch_id)
    assert "not ours" in row["failure_reason"]
    keys = [
        r["idempotency_key"] for r in await db.fetch("SELECT idempotency_key FROM ledger_outbox")
    ]
    assert f"withdrawal:{row['id']}:failed" in keys  # the ledger releases the held funds
