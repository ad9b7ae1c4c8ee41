"""TRON deposits end to end: TRON devnet -> adapter -> watcher -> API and reference ledger.

The devnet's solidified head trails its head by 19 blocks (its default) and tron-devnet.toml
demands solidity: a deposit is credited once its block is solidified, however many blocks are on
top of it before that. Payments are signed with tronpy by a genesis key, which also owns the
genesis USDT TRC-20 listed in the registry. The devnet is shared by the whole session: each test
mines the leftovers of the pool away and starts its watcher above them, on a fresh database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from tronpy import AsyncTron
from tronpy.keys import PrivateKey
from tronpy.providers.async_http import AsyncHTTPProvider

from chaingate.devnet.manager import DevnetState
from chaingate.devnet.tron_node import GENESIS_KEYS
from chaingate.domain import Network
from harness import CUT_AFTER, Gateway, devnet_network, gateway, interrupted_step

USER = "alice"
SOLIDIFY_LAG = 19  # the devnet's default; the watcher is told nothing about it
SENDER = PrivateKey(bytes.fromhex(GENESIS_KEYS[0]))  # holds the genesis USDT supply
SENDER_ADDRESS = SENDER.public_key.to_base58check_address()


class Devnet:
    """The TRON devnet's controls (POST /devnet/...) and a tronpy client that pays from SENDER."""

    def __init__(self, url: str, tron: AsyncTron) -> None:
        self.url = url
        self.tron = tron

    async def control(self, control: str, **body: Any) -> Any:
        async with httpx.AsyncClient() as client:
            reply = await client.post(f"{self.url}/devnet/{control}", json=body)
        reply.raise_for_status()
        return reply.json()

    async def mine(self, count: int = 1) -> int:
        return int((await self.control("mine", count=count))["head"])

    async def fork(self, depth: int) -> None:
        """Drop the last ``depth`` blocks and the pool: their transactions are gone for good."""
        await self.control("fork", depth=depth)

    async def pay_trx(self, to: str, sun: int) -> str:
        tx = (await self.tron.trx.transfer(SENDER_ADDRESS, to, sun).build()).sign(SENDER)
        assert (await tx.broadcast())["result"] is True
        return str(tx.txid)

    async def pay_trc20(self, contract: str, to: str, amount: int) -> str:
        token = await self.tron.get_contract(contract)
        call = await token.functions.transfer(to, amount)
        tx = (await call.with_owner(SENDER_ADDRESS).fee_limit(100_000_000).build()).sign(SENDER)
        assert (await tx.broadcast())["result"] is True
        return str(tx.txid)

    async def pay_trc10(self, token_id: int, to: str, amount: int) -> str:
        builder = self.tron.trx.asset_transfer(SENDER_ADDRESS, to, amount, token_id)
        tx = (await builder.build()).sign(SENDER)
        assert (await tx.broadcast())["result"] is True
        return str(tx.txid)


@pytest.fixture
async def chain(devnet: DevnetState) -> AsyncIterator[Devnet]:
    assert devnet.tron_url is not None, "the devnet runs without the TRON node"
    async with AsyncTron(provider=AsyncHTTPProvider(devnet.tron_url)) as tron:
        yield Devnet(devnet.tron_url, tron)


async def network_above_leftovers(devnet: DevnetState, chain: Devnet, **overrides: Any) -> Network:
    """tron-devnet starting at the block after the one that takes whatever is in the pool."""
    assert devnet.tron_url is not None
    head = await chain.mine(1)
    return devnet_network("tron-devnet", devnet.tron_url, start_height=head + 1, **overrides)


@pytest.fixture
async def network(devnet: DevnetState, chain: Devnet) -> Network:
    return await network_above_leftovers(devnet, chain)


@pytest.fixture
async def gw(network: Network, db: asyncpg.Pool, ledger_url: str) -> AsyncIterator[Gateway]:
    async with gateway(network, db, ledger_url) as gw:
        yield gw


def usdt(network: Network) -> str:
    contract = network.asset("USDT").contract
    assert contract is not None
    return contract


async def settle(gw: Gateway) -> None:
    """Catch up with the chain and deliver every outbox message the ledger is due."""
    await gw.sync()
    while await gw.deliver():
        pass


async def by_txid(gw: Gateway, user: str = USER) -> dict[str, dict[str, Any]]:
    return {d["txid"]: d for d in await gw.deposits(user)}


# --- crediting at solidity -----------------------------------------------------------------------
async def test_trx_and_usdt_are_credited_once_when_their_block_solidifies(
    gw: Gateway, chain: Devnet
) -> None:
    address = await gw.address(USER)
    assert address.startswith("T")
    trx = await chain.pay_trx(address, 5_000_000)
    token = await chain.pay_trc20(usdt(gw.network), address, 7_000_001)
    block = await chain.mine(1)

    # Many more than the 2 confirmations, but the block is still above the solidified head.
    await chain.mine(SOLIDIFY_LAG - 1)
    await settle(gw)
    deposits = await by_txid(gw)
    assert {d["status"] for d in deposits.values()} == {"confirming"}
    assert deposits[trx]["confirmations"] == SOLIDIFY_LAG >= deposits[trx]["required_confirmations"]
    assert deposits[trx]["block_number"] == block
    assert await gw.balances(USER) == {}

    await chain.mine(1)  # now the block is the solidified head
    await settle(gw)
    deposits = await by_txid(gw)
    assert (deposits[trx]["asset"], deposits[trx]["amount"], deposits[trx]["status"]) == (
        "TRX",
        "5000000",
        "credited",
    )
    assert (deposits[token]["asset"], deposits[token]["amount"], deposits[token]["status"]) == (
        "USDT",
        "7000001",
        "credited",
    )
    assert await gw.balances(USER) == {"TRX": 5_000_000, "USDT": 7_000_001}

    await chain.mine(5)
    await settle(gw)
    credits = await gw.credits(USER)
    assert sorted((c["txid"], c["asset"], c["amount"]) for c in credits) == sorted(
        [(trx, "TRX", "5000000"), (token, "USDT", "7000001")]
    )
    assert await gw.balances(USER) == {"TRX": 5_000_000, "USDT": 7_000_001}


async def test_failed_lookalike_and_unlisted_transfers_are_rejected_with_their_reason(
    gw: Gateway, chain: Devnet
) -> None:
    address = await gw.address(USER)
    await chain.control("fail-next", mode="REVERT")
    reverted = await chain.pay_trc20(usdt(gw.network), address, 2_000_000)
    await chain.control("fail-next", mode="OUT_OF_ENERGY")
    out_of_energy = await chain.pay_trc20(usdt(gw.network), address, 3_000_000)
    lookalike = (
        await chain.control(
            "deploy-trc20", symbol="USDT", decimals=6, owner=SENDER_ADDRESS, supply=10**12
        )
    )["contract"]
    fake = await chain.pay_trc20(lookalike, address, 4_000_000)
    token_id = (
        await chain.control("issue-trc10", name="USDT", owner=SENDER_ADDRESS, supply=10**9)
    )["token_id"]
    await chain.control("fund", address=address, amount_sun=1)  # TRC-10 needs the account
    trc10 = await chain.pay_trc10(token_id, address, 5_000_000)
    await chain.mine(SOLIDIFY_LAG + 2)
    await settle(gw)

    deposits = await by_txid(gw)
    assert {txid: (d["status"], d["reason"]) for txid, d in deposits.items()} == {
        reverted: ("rejected", "failed_tx"),
        out_of_energy: ("rejected", "failed_tx"),
        fake: ("rejected", "unlisted_token"),
        trc10: ("rejected", "unlisted_token"),
    }
    assert (deposits[fake]["contract"], deposits[trc10]["contract"]) == (lookalike, str(token_id))
    assert await gw.credits(USER) == []
    assert await gw.balances(USER) == {}
    # Money that reached us over a path we do not credit is for operations to sort out.
    # Unlisted contracts alert once per contract and day, at a low severity.
    unlisted = {a["txid"]: a for a in await gw.alerts() if a["kind"] == "unlisted_token"}
    assert set(unlisted) == {fake, trc10}
    assert all((a["user_id"], a["severity"]) == (USER, "warning") for a in unlisted.values())


# --- forks ---------------------------------------------------------------------------------------
async def test_fork_removing_an_uncredited_deposit_orphans_it(gw: Gateway, chain: Devnet) -> None:
    address = await gw.address(USER)
    txid = await chain.pay_trx(address, 6_000_000)
    await chain.mine(2)
    await settle(gw)
    assert (await by_txid(gw))[txid]["status"] == "confirming"

    await chain.fork(2)
    await chain.mine(3)
    await settle(gw)
    deposit = (await by_txid(gw))[txid]
    assert (deposit["status"], deposit["reason"]) == ("orphaned", "reorg")

    await chain.mine(SOLIDIFY_LAG + 2)
    await settle(gw)
    assert (await by_txid(gw))[txid]["status"] == "orphaned"
    assert await gw.credits(USER) == []
    assert await gw.balances(USER) == {}


async def test_fork_removing_a_credited_deposit_sends_a_reversal(
    devnet: DevnetState, chain: Devnet, db: asyncpg.Pool, ledger_url: str
) -> None:
    # A solidified TRON block cannot be forked away (the devnet refuses, as the real chain
    # would), so a deposit credited at solidity is never reversed. To exercise the reversal
    # path, this network credits on confirmations alone: solidity_finality off, 1 confirmation.
    network = await network_above_leftovers(devnet, chain, solidity_finality=False, confirmations=1)
    async with gateway(network, db, ledger_url) as gw:
        address = await gw.address(USER)
        txid = await chain.pay_trc20(usdt(network), address, 8_000_000)
        await chain.mine(1)
        await settle(gw)
        assert (await by_txid(gw))[txid]["status"] == "credited"
        assert await gw.balances(USER) == {"USDT": 8_000_000}

        await chain.fork(1)
        await chain.mine(2)
        await settle(gw)
        deposit = (await by_txid(gw))[txid]
        assert (deposit["status"], deposit["reason"]) == ("reversed", "reorg")
        assert await gw.balances(USER) == {"USDT": 0}
        [credit] = await gw.credits(USER)
        assert credit["txid"] == txid and credit["reversed"]
        [alert] = [a for a in await gw.alerts() if a["kind"] == "reorg_reversal"]
        assert (alert["txid"], int(alert["amount"]), alert["user_id"]) == (txid, 8_000_000, USER)


# --- restarts ------------------------------------------------------------------------------------
ROUNDS, BLOCKS_PER_ROUND = 6, 5


async def test_restart_at_any_point_credits_each_deposit_exactly_once(
    network: Network, db: asyncpg.Pool, ledger_url: str, chain: Devnet
) -> None:
    users = [f"user{i}" for i in range(3)]
    expected: dict[str, dict[str, int]] = {user: {} for user in users}
    async with gateway(network, db, ledger_url) as gw:
        addresses = {user: await gw.address(user) for user in users}
    finished = 0
    for round_no in range(ROUNDS):
        # Payments keep arriving and solidifying while the gateway is killed again and again
        # at every stage of a step (head, scan, store, credit) and of a delivery.
        user, amount = users[round_no % len(users)], 1_000_000 + round_no
        if round_no % 2:
            await chain.pay_trc20(usdt(network), addresses[user], amount)
            asset = "USDT"
        else:
            await chain.pay_trx(addresses[user], amount)
            asset = "TRX"
        expected[user][asset] = expected[user].get(asset, 0) + amount
        await chain.mine(BLOCKS_PER_ROUND)
        for delay in CUT_AFTER:
            async with gateway(network, db, ledger_url) as gw:  # a new process: a new Watcher
                finished += await interrupted_step(gw, delay)
    assert 0 < finished < ROUNDS * len(CUT_AFTER)  # some steps were cut short, some got through

    await chain.mine(SOLIDIFY_LAG + 1)
    # A killed dispatcher's claimed rows come back when its lease (30 s) runs out; skip the wait.
    await db.execute("UPDATE ledger_outbox SET next_attempt_at = now() WHERE delivered_at IS NULL")
    async with gateway(network, db, ledger_url) as gw:
        await settle(gw)
        for user in users:
            credits = await gw.credits(user)
            assert len(credits) == 2 and not any(c["reversed"] for c in credits)
            assert await gw.balances(user) == expected[user]
            assert {d["status"] for d in await gw.deposits(user)} == {"credited"}
        undelivered = "SELECT count(*) FROM ledger_outbox WHERE delivered_at IS NULL"
        assert await db.fetchval(undelivered) == 0
        assert await gw.alerts() == []
