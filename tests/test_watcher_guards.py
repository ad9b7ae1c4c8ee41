"""Guards of the watcher that each stand between a reorg and a wrong credit (issue 8): a scanned
range must link to the stored tip, crediting never reaches past the scanned chain, and
confirmations count on the chain the watcher verified (min(head, cursor)), not on a head an
endpoint reported. Each test fails when its guard is removed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from chaindrivers.evm import E18 as ETH
from chaindrivers.evm import SENDER, head, rpc
from chaingate.devnet import evm_contracts as evm
from chaingate.devnet.manager import DevnetState
from chaingate.domain import DepositInput, DepositStatus
from chaingate.store import chainstate, deposits
from harness import Gateway, devnet_network, gateway


@pytest.fixture
async def eth(devnet: DevnetState, db: Any, ledger_url: str) -> AsyncIterator[Gateway]:
    url = devnet.eth_url or ""
    network = devnet_network("ethereum-devnet", url, start_height=await head(url) + 1)
    async with gateway(network, db, ledger_url) as gw:
        yield gw


async def cursor(gw: Gateway) -> int:
    async with gw.db.acquire() as conn:
        value = await chainstate.get_cursor(conn, gw.network.name)
    assert value is not None
    return value


async def test_a_range_that_does_not_link_to_the_stored_tip_is_not_stored(
    eth: Gateway, devnet: DevnetState
) -> None:
    """The tip we stored (with a deposit in it) is replaced between the fork check and the
    scan. Stored on top of it anyway, the new branch would hide the reorg for good: the next
    fork check finds our (new) tip canonical, and the deposit of a dropped block is credited."""
    url = devnet.eth_url or ""
    address = await eth.address("xena")
    await eth.sync()
    snapshot = await rpc(url, "evm_snapshot")
    await evm.send_eth(url, SENDER, address, ETH)  # mined in its own block: the stored tip
    await eth.sync()
    tip = await cursor(eth)
    [row] = await eth.deposits("xena")
    assert (row["status"], int(row["block_number"])) == ("confirming", tip)

    assert await rpc(url, "evm_revert", snapshot)  # drops the tip ...
    await evm.mine(url, 4)  # ... for a longer branch without the payment
    lease = await eth.watcher._hold()
    scanned = await eth.watcher.adapter.scan(tip + 1, tip + 3, eth.watcher.book)
    assert not await eth.watcher._store_range(lease, tip, tip + 3, scanned)
    assert await cursor(eth) == tip  # nothing stored, the next fork check sees the reorg

    await evm.mine(url, 3)
    await eth.sync()
    [row] = await eth.deposits("xena")
    assert (row["status"], row["reason"]) == ("orphaned", "reorg")
    await eth.deliver()
    assert await eth.credits("xena") == []


async def test_crediting_never_reaches_past_the_scanned_chain(db: asyncpg.Pool) -> None:
    """A confirming row above the cursor (however its confirmations came to be counted) is
    not due: only blocks the watcher scanned and linked are credited."""
    network = "ethereum-devnet"
    async with db.acquire() as conn:
        await conn.execute("INSERT INTO chain_cursor (network, height) VALUES ($1, 100)", network)
        await deposits.upsert(
            conn,
            [
                DepositInput(
                    network=network,
                    txid=f"0x{n:064x}",
                    position="tx",
                    to_key="0x" + "22" * 20,
                    amount=ETH,
                    status=DepositStatus.CONFIRMING,
                    asset="ETH",
                    decimals=18,
                    user_id="yann",
                    block_number=n,
                    block_hash=f"0x{n:064x}",
                    required_confirmations=3,
                )
                for n in (98, 101)
            ],
        )
        await conn.execute("UPDATE deposits SET confirmations = 10")
        due = await deposits.credit_due(conn, network, 100, None)
    assert [int(r["block_number"]) for r in due] == [98]


async def test_confirmations_count_on_the_verified_chain_not_the_reported_head(
    devnet: DevnetState, db: Any, ledger_url: str
) -> None:
    """Catching up one block per step: the head is 5 blocks on, the cursor is at the deposit's
    block. Counted from the head, the deposit would be credited before the blocks above it
    were scanned (and checked to link); counted from the cursor, it waits for them."""
    url = devnet.eth_url or ""
    network = devnet_network("ethereum-devnet", url, start_height=await head(url) + 1)
    async with gateway(network, db, ledger_url) as setup:
        address = await setup.address("zoe")
    await evm.send_eth(url, SENDER, address, ETH)
    block = await head(url)
    await evm.mine(url, 5)
    slow = devnet_network("ethereum-devnet", url, start_height=block, scan_batch=1)
    async with gateway(slow, db, ledger_url) as gw:
        result = await gw.step()
        assert result.cursor == block and result.head == block + 5
        [row] = await gw.deposits("zoe")
        assert (row["status"], row["confirmations"]) == ("confirming", 1)
        await gw.step()
        await gw.step()
        [row] = await gw.deposits("zoe")
        assert (row["status"], row["confirmations"]) == ("credited", 3)


async def test_a_step_that_found_a_reorg_credits_nothing(eth: Gateway, devnet: DevnetState) -> None:
    """The deposit below the fork comes due in the very step that rolled back: the credit
    waits for the next step, which checks the new chain again first."""
    url = devnet.eth_url or ""
    address = await eth.address("abel")
    await eth.sync()
    await evm.send_eth(url, SENDER, address, ETH)
    snapshot = await rpc(url, "evm_snapshot")
    await evm.mine(url, 1)
    await eth.sync()
    [row] = await eth.deposits("abel")
    assert (row["status"], row["confirmations"]) == ("confirming", 2)
    assert await rpc(url, "evm_revert", snapshot)
    # Another block at that height (an empty one mined in the same second would be the same
    # block again, and no reorg at all): a payment elsewhere, then one more block.
    await evm.send_eth(url, SENDER, "0x" + "77" * 20, 1)
    await evm.mine(url, 1)
    result = await eth.watcher.step()
    assert result.reorg_depth == 1 and result.credited == 0
    [row] = await eth.deposits("abel")
    assert row["status"] == "confirming"
    result = await eth.watcher.step()
    assert result.reorg_depth == 0 and result.credited == 1
