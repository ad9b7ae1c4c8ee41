"""Bitcoin withdrawal batches on litecoind regtest: planner, the signer, broadcaster, tracker.

A batch of five withdrawals to five script types becomes ONE transaction with exactly those
outputs plus change to our own change address; the destinations receive their amounts to the
satoshi; the hot wallet's coins in the store equal the node's ``scantxoutset``; the batch is
confirmed once, also after the block that held it left the chain.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from chaindrivers.bitcoin import ltc_rpc
from chaingate.chains.bitcoin.addresses import BitcoinAddresses
from chaingate.chains.bitcoin.bech32 import encode_segwit
from chaingate.chains.bitcoin.coinselect import Coin
from chaingate.chains.bitcoin.rawtx import decode_tx
from chaingate.chains.bitcoin.rpc import BitcoinRpc
from chaingate.chains.bitcoin.txbuilder import TxOut, build_batch
from chaingate.devnet.bitcoin import LitecoinRpc
from chaingate.devnet.manager import DevnetState
from chaingate.domain import Network
from chaingate.signer.bitcoin import sign_p2wpkh
from chaingate.signer.checks import SignerLimit
from chaingate.signer.config import SignerSettings
from chaingate.signer.hotwallet import hot_wallet
from chaingate.signer.keystore import KeyRing, hot_key
from chaingate.signer.service import Signer
from chaingate.withdrawals.bitcoin_tracker import BitcoinBroadcaster
from chaingate.withdrawals.coins import wallet_address
from harness import Gateway, devnet_network, gateway
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


async def node_unspent(
    ltc: LitecoinRpc, scripts: list[str], since: int = 0
) -> dict[tuple[str, int], int]:
    found = await ltc.call("scantxoutset", "start", [f"raw({s})" for s in scripts], wallet=False)
    return {
        (u["txid"], u["vout"]): int(Decimal(str(u["amount"])) * COIN) for u in found["unspents"]
    }


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
    batch_id = await approved_batch(db, network, "BTC", destinations, plan=False)
    signer = signer_for(db, network, key)
    broadcaster = BitcoinBroadcaster(db, network, BitcoinRpc(gw.pool), track_every=0.01)

    async def confirmed() -> bool:
        return await statuses(db, batch_id) == ["confirmed"]

    await run_until(gw, ltc, signer, broadcaster, confirmed)
    [tx] = await db.fetch("SELECT * FROM withdrawal_txs WHERE batch_id = $1", batch_id)
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
    for _ in range(60):
        await gw.sync()
        await signer._pass()
        await broadcaster._pass()
        if await replaced():
            break
        await asyncio.sleep(0.1)
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
