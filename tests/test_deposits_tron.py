"""TRON deposits end to end: TRON devnet -> adapter -> watcher -> API and reference ledger.

The devnet's solidified head trails its head by 19 blocks (its default) and tron-devnet.toml
demands solidity: a deposit is credited once its block is solidified, however many blocks are on
top of it before that. Payments are signed with tronpy by a genesis key, which also owns the
genesis USDT TRC-20 listed in the registry. The devnet is shared by the whole session: each test
mines the leftovers of the pool away and starts its watcher above them, on a fresh database.
The rules every chain shares (reorgs, dust, restarts, ...) are in test_deposits.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

import emptied_fixtures
from chaindrivers.tron import SENDER_ADDRESS, TronNode, tron_node
from chaingate.devnet.manager import DevnetState
from chaingate.domain import Network
from harness import Gateway, by_txid, devnet_network, gateway, settle

# One database and one reference ledger per module, emptied before each test.
database = emptied_fixtures.database
ledger_url = emptied_fixtures.ledger_url

USER = "alice"
SOLIDIFY_LAG = 19  # the devnet's default; the watcher is told nothing about it


# The devnet's controls and a tronpy client paying from a genesis key (shared with the driver).
Devnet = TronNode


@pytest.fixture
async def chain(devnet: DevnetState) -> AsyncIterator[Devnet]:
    async with tron_node(devnet) as node:
        yield node


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
    deposits = await by_txid(gw, USER)
    assert {d["status"] for d in deposits.values()} == {"confirming"}
    assert deposits[trx]["confirmations"] == SOLIDIFY_LAG >= deposits[trx]["required_confirmations"]
    assert deposits[trx]["block_number"] == block
    assert await gw.balances(USER) == {}

    await chain.mine(1)  # now the block is the solidified head
    await settle(gw)
    deposits = await by_txid(gw, USER)
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

    deposits = await by_txid(gw, USER)
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


ROUNDS, BLOCKS_PER_ROUND = 6, 5
