"""Bitcoin deposits end to end: litecoind regtest -> adapter -> watcher -> API and reference ledger.

Every assertion is about what a user (the API) or the ledger sees. The session's litecoind is
shared by every test and some of these tests reorganise it, so each test mines the leftovers of
the mempool away first, starts its watcher at the current height on a fresh database, and
leaves no invalidated block behind. The rules every chain shares (reorgs, dust, restarts, ...)
are in test_deposits.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

import emptied_fixtures
from chaindrivers.bitcoin import ltc_rpc, mine_conflict
from chaingate.devnet.bitcoin import LitecoinRpc, sats_to_coins, script_to_node_address, to_script
from chaingate.devnet.manager import DevnetState
from chaingate.domain import Network
from harness import Gateway, devnet_network, gateway, settle

# One database and one reference ledger per module, emptied before each test.
database = emptied_fixtures.database
ledger_url = emptied_fixtures.ledger_url

USER = "alice"


@pytest.fixture
async def ltc(devnet: DevnetState) -> AsyncIterator[LitecoinRpc]:
    async with ltc_rpc(devnet) as rpc:
        # Whatever an earlier test left in the mempool is mined now, below our start height.
        await rpc.mine(1)
        yield rpc


@pytest.fixture
async def network(devnet: DevnetState, ltc: LitecoinRpc) -> Network:
    assert devnet.ltc_rpc_url is not None
    # Start above the block that took the leftovers (``ltc``): they may pay our addresses too.
    height = int(await ltc.call("getblockcount", wallet=False))
    return devnet_network(
        "bitcoin-devnet", devnet.ltc_rpc_url, start_height=height + 1, confirmations=2
    )


@pytest.fixture
async def gw(network: Network, db: asyncpg.Pool, ledger_url: str) -> AsyncIterator[Gateway]:
    async with gateway(network, db, ledger_url) as gw:
        yield gw


# --- helpers ---------------------------------------------------------------------------------
async def only_deposit(gw: Gateway, user: str = USER) -> dict[str, Any]:
    [deposit] = await gw.deposits(user)
    return deposit


async def mine_empty(ltc: LitecoinRpc) -> str:
    """A block without the mempool's transactions: after invalidateblock, the competing block
    that makes the reorg visible. A chain that only got shorter is no evidence of a reorg (a
    lagging backend looks the same); another hash at or below the head is (SPEC section 4)."""
    reply = await ltc.call("generateblock", await ltc.mining_address(), [], wallet=False)
    return str(reply["hash"])


async def standing_credits(gw: Gateway, user: str = USER) -> list[dict[str, Any]]:
    return [c for c in await gw.credits(user) if not c["reversed"]]


async def pay_twice_in_one_tx(ltc: LitecoinRpc, address: str, first: int, second: int) -> str:
    """One transaction with two outputs to ``address`` (the wallet refuses to build that)."""
    script = to_script(address)
    node_address = script_to_node_address(script)
    placeholder = await ltc.call("getnewaddress", "", "bech32")
    outputs = [{node_address: sats_to_coins(first)}, {placeholder: sats_to_coins(second)}]
    raw = await ltc.call("createrawtransaction", [], outputs)
    funded = await ltc.call("fundrawtransaction", raw)
    placeholder_script = (await ltc.call("getaddressinfo", placeholder))["scriptPubKey"]
    doubled = funded["hex"].replace(placeholder_script, script.hex())
    signed = await ltc.call("signrawtransactionwithwallet", doubled)
    return str(await ltc.call("sendrawtransaction", signed["hex"], wallet=False))


# --- confirmations -----------------------------------------------------------------------------
async def test_deposit_is_seen_then_credited_once_after_two_confirmations(
    gw: Gateway, ltc: LitecoinRpc
) -> None:
    address = await gw.address(USER)
    assert address.startswith("bcrt1q")
    txid = await ltc.send_to_script(address, 1_234_567)

    await settle(gw)
    deposit = await only_deposit(gw)
    assert (deposit["txid"], deposit["status"], deposit["amount"]) == (txid, "seen", "1234567")
    assert deposit["block_number"] is None

    await ltc.mine(1)
    await settle(gw)
    deposit = await only_deposit(gw)
    assert (deposit["status"], deposit["confirmations"]) == ("confirming", 1)
    assert await gw.balances(USER) == {}

    await ltc.mine(1)
    await settle(gw)
    assert (await only_deposit(gw))["status"] == "credited"
    assert await gw.balances(USER) == {"BTC": 1_234_567}

    await ltc.mine(3)
    await settle(gw)
    [credit] = await gw.credits(USER)
    assert (credit["txid"], credit["amount"], credit["reversed"]) == (txid, "1234567", False)
    assert await gw.balances(USER) == {"BTC": 1_234_567}


async def test_two_outputs_to_one_address_in_one_transaction_are_two_credits(
    gw: Gateway, ltc: LitecoinRpc
) -> None:
    address = await gw.address(USER)
    txid = await pay_twice_in_one_tx(ltc, address, 50_000_000, 25_000_000)
    await ltc.mine(2)
    await settle(gw)

    deposits = await gw.deposits(USER)
    assert sorted((d["txid"], d["amount"], d["status"]) for d in deposits) == [
        (txid, "25000000", "credited"),
        (txid, "50000000", "credited"),
    ]
    assert len({d["position"] for d in deposits}) == 2
    credits = await gw.credits(USER)
    assert sorted(int(c["amount"]) for c in credits) == [25_000_000, 50_000_000]
    assert await gw.balances(USER) == {"BTC": 75_000_000}


# --- reorgs ------------------------------------------------------------------------------------
async def test_invalidated_block_orphans_uncredited_deposit_and_reconsider_restores_it(
    gw: Gateway, ltc: LitecoinRpc
) -> None:
    address = await gw.address(USER)
    txid = await ltc.send_to_script(address, 2_000_000, replaceable=True)
    [block] = await ltc.mine(1)
    await settle(gw)
    assert (await only_deposit(gw))["status"] == "confirming"

    await ltc.invalidate(block)
    # invalidateblock puts the payment back in the mempool; the payer double-spends it there,
    # so the deposit's only copy is in the block that left the chain.
    await ltc.replace_dropping_payment(txid)
    [rival] = await ltc.mine(1)  # a competing block at that height, with the replacement
    await settle(gw)
    deposit = await only_deposit(gw)
    assert (deposit["status"], deposit["reason"]) == ("orphaned", "reorg")
    assert await gw.credits(USER) == []

    # The old block comes back as the best chain: the replacement is the one that vanishes.
    await ltc.reconsider(block)
    await ltc.invalidate(rival)
    assert await ltc.call("getbestblockhash", wallet=False) == block
    await settle(gw)
    assert (await only_deposit(gw))["status"] == "confirming"
    await ltc.mine(1)
    await settle(gw)
    deposit = await only_deposit(gw)
    assert (deposit["txid"], deposit["status"]) == (txid, "credited")
    [credit] = await gw.credits(USER)
    assert credit["txid"] == txid and not credit["reversed"]
    assert await gw.balances(USER) == {"BTC": 2_000_000}


async def test_reorg_and_remine_before_the_ledger_heard_of_the_credit(
    gw: Gateway, ltc: LitecoinRpc
) -> None:
    """Credit, reversal and the re-mined credit all wait in the outbox when the dispatcher runs."""
    address = await gw.address(USER)
    await ltc.send_to_script(address, 4_000_000)
    first, _ = await ltc.mine(2)
    await gw.sync()
    await ltc.invalidate(first)
    await mine_empty(ltc)
    await gw.sync()
    assert (await only_deposit(gw))["status"] == "seen"
    await ltc.reconsider(first)
    await gw.sync()
    assert (await only_deposit(gw))["status"] == "credited"

    for _ in range(5):
        await gw.deliver()
    assert [int(c["amount"]) for c in await standing_credits(gw)] == [4_000_000]
    assert await gw.balances(USER) == {"BTC": 4_000_000}


# --- mempool -----------------------------------------------------------------------------------
async def test_rbf_replacement_dropping_the_payment_is_never_credited(
    gw: Gateway, ltc: LitecoinRpc
) -> None:
    address = await gw.address(USER)
    txid = await ltc.send_to_script(address, 5_000_000, replaceable=True)
    await settle(gw)
    assert (await only_deposit(gw))["status"] == "seen"

    replacement = await ltc.replace_dropping_payment(txid)
    await settle(gw)
    await ltc.mine(3)
    await settle(gw)
    mined = await ltc.call("getrawtransaction", replacement, True, wallet=False)
    assert mined["confirmations"] >= 1
    deposit = await only_deposit(gw)
    assert (deposit["txid"], deposit["status"]) == (txid, "orphaned")
    assert deposit["reason"] == "dropped_from_mempool"
    assert await gw.credits(USER) == []
    assert await gw.balances(USER) == {}


async def test_payment_evicted_from_the_mempool_by_a_mined_conflict_is_never_credited(
    gw: Gateway, ltc: LitecoinRpc
) -> None:
    address = await gw.address(USER)
    txid = await ltc.send_to_script(address, 6_000_000)  # no RBF signal
    await settle(gw)
    assert (await only_deposit(gw))["status"] == "seen"

    conflict = await mine_conflict(ltc, txid)
    assert txid not in await ltc.call("getrawmempool", wallet=False)
    await ltc.mine(2)
    await settle(gw)
    deposit = await only_deposit(gw)
    assert (deposit["txid"], deposit["status"]) == (txid, "orphaned")
    assert conflict != txid
    assert await gw.credits(USER) == []
    assert await gw.balances(USER) == {}
