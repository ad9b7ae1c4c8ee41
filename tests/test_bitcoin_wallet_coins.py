"""The hot wallet's UTXO set on litecoind regtest: followed from verified blocks, spent by a
transaction we build and sign ourselves, and followed through a reorg. After every step the
store's unspent set equals what the node's ``scantxoutset`` says."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import asyncpg
import pytest

from chaindrivers.bitcoin import BitcoinDriver, bitcoin_driver, node_unspent
from chaingate.chains.bitcoin.rpc import BitcoinRpc
from chaingate.chains.bitcoin.txbuilder import TxOut, build_batch
from chaingate.devnet.bitcoin import LitecoinRpc
from chaingate.devnet.manager import DevnetState
from chaingate.domain import Network
from chaingate.signer.bitcoin import sign_p2wpkh
from chaingate.signer.hotwallet import hot_wallet
from chaingate.signer.keystore import KeyRing, hot_key
from chaingate.store import wallet
from chaingate.withdrawals.coins import CoinFollower, wallet_address
from harness import Gateway, gateway
from test_bitcoin_hotwallet import devnet_hot_account

BTC = "bitcoin-devnet"


@pytest.fixture
async def driver(devnet: DevnetState) -> AsyncIterator[BitcoinDriver]:
    async with bitcoin_driver(devnet) as driver:
        yield driver


@pytest.fixture
async def network(driver: BitcoinDriver) -> Network:
    xpub, _ = devnet_hot_account(2)
    return dataclasses.replace(await driver.network(), confirmations=1, hot_xpub=xpub)


@pytest.fixture
async def gw(network: Network, db: asyncpg.Pool, ledger_url: str) -> AsyncIterator[Gateway]:
    async with gateway(network, db, ledger_url) as gw:
        yield gw


async def caught_up(gw: Gateway, follower: CoinFollower) -> None:
    await gw.sync()
    while await follower.follow_once():
        pass


async def hot_wallet_on_node(
    ltc: LitecoinRpc, db: asyncpg.Pool, since: int
) -> dict[tuple[str, int], int]:
    scripts = [r["script"] for r in await db.fetch("SELECT script FROM wallet_addresses")]
    return await node_unspent(ltc, scripts, since)


async def confirmed_unspent(db: asyncpg.Pool) -> dict[tuple[str, int], int]:
    rows = await db.fetch(
        """SELECT txid, vout, amount::text AS amount FROM wallet_coins
            WHERE block_number IS NOT NULL AND spent_block_number IS NULL"""
    )
    return {(r["txid"], r["vout"]): int(r["amount"]) for r in rows}


async def test_the_hot_wallets_coins_follow_the_chain_through_a_spend_and_a_reorg(
    gw: Gateway, driver: BitcoinDriver, network: Network
) -> None:
    assert gw.pool is not None and network.hot_xpub
    ltc = driver.ltc
    follower = CoinFollower(gw.db, network, BitcoinRpc(gw.pool))
    hot = hot_wallet(network, KeyRing([hot_key(devnet_hot_account(2)[1])]))
    receive = [wallet_address(network.hot_xpub, 0, i) for i in (0, 5)]
    await driver.pay(receive[0].script, 150_000)
    await driver.pay(receive[1].script, 250_000)
    await caught_up(gw, follower)
    assert await confirmed_unspent(gw.db) == await hot_wallet_on_node(
        ltc, gw.db, network.start_height or 0
    )
    assert sorted((await confirmed_unspent(gw.db)).values()) == [150_000, 250_000]

    # One transaction of ours: two payments and change to our change chain, signed here and
    # accepted by the node (the BIP143 signatures are valid on a real chain).
    async with gw.db.acquire() as conn:
        coins = await wallet.spendable(conn, BTC)
    change = wallet_address(network.hot_xpub, 1, 0)
    batch = build_batch(
        [
            TxOut(120_000, bytes.fromhex("0014" + "ab" * 20)),
            TxOut(60_000, bytes.fromhex("5120" + "cd" * 32)),
        ],
        coins,
        change_script=bytes.fromhex(change.script),
        fee_rate=2_000,
        fee_cap=10_000,
    )
    assert batch.change is not None and len(batch.coins) == 1  # the 250,000 coin alone
    after = sorted([150_000, batch.change.amount])
    signed = sign_p2wpkh(batch, hot.key)
    mark = await driver.mark()
    assert await ltc.call("sendrawtransaction", signed.raw.hex(), wallet=False) == signed.txid
    await driver.mine(1)
    await caught_up(gw, follower)
    assert await confirmed_unspent(gw.db) == await hot_wallet_on_node(
        ltc, gw.db, network.start_height or 0
    )
    assert sorted((await confirmed_unspent(gw.db)).values()) == after

    # The block leaves the chain (a longer branch of empty blocks makes the reorg visible): the
    # spend is undone and the change is unconfirmed again; both come back when it is mined again.
    await driver.orphan(mark)
    await caught_up(gw, follower)
    assert await confirmed_unspent(gw.db) == await hot_wallet_on_node(
        ltc, gw.db, network.start_height or 0
    )
    assert sorted((await confirmed_unspent(gw.db)).values()) == [150_000, 250_000]
    await driver.mine(1)  # the transaction went back to the mempool: mined again
    await caught_up(gw, follower)
    assert await confirmed_unspent(gw.db) == await hot_wallet_on_node(
        ltc, gw.db, network.start_height or 0
    )
    assert sorted((await confirmed_unspent(gw.db)).values()) == after
    # the change address counts as used, so the change chain is derived further ahead
    async with gw.db.acquire() as conn:
        assert await wallet.derived_and_used(conn, BTC, "hot", 1) == (21, 1)
