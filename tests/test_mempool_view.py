"""The mempool view is informational (SPEC section 5, issue 8 items 5 and 10), on litecoind
regtest behind the fault proxy: a mempool sighting never changes a deposit that is in a block,
and a mempool pass that fails (getrawmempool refused) never stops crediting."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from chaindrivers.bitcoin import ltc_rpc
from chaingate.devnet.bitcoin import LitecoinRpc
from chaingate.devnet.manager import DevnetState
from chaingate.domain import DepositInput, DepositStatus
from chaingate.store import deposits
from faultproxy import FaultProxy, running_proxy
from harness import Gateway, devnet_network, gateway

USER = "vera"


@pytest.fixture
async def ltc(devnet: DevnetState) -> AsyncIterator[LitecoinRpc]:
    async with ltc_rpc(devnet) as rpc:
        await rpc.mine(1)  # an earlier test's leftovers, below our start height
        yield rpc


@pytest.fixture
async def proxy(devnet: DevnetState) -> AsyncIterator[FaultProxy]:
    async with running_proxy(devnet.ltc_rpc_url or "") as proxy:
        yield proxy


@pytest.fixture
async def gw(
    ltc: LitecoinRpc, proxy: FaultProxy, db: asyncpg.Pool, ledger_url: str
) -> AsyncIterator[Gateway]:
    height = int(await ltc.call("getblockcount", wallet=False))
    network = devnet_network("bitcoin-devnet", proxy.url, start_height=height + 1, confirmations=2)
    async with gateway(network, db, ledger_url) as gw:
        yield gw


async def test_a_refused_getrawmempool_does_not_stop_crediting(
    gw: Gateway, ltc: LitecoinRpc, proxy: FaultProxy
) -> None:
    proxy.faults.refused_methods = frozenset({"getrawmempool"})
    address = await gw.address(USER)
    await ltc.send_to_script(address, 1_500_000)
    await ltc.mine(2)
    await gw.settle()  # no step fails: the mempool pass is best effort
    [deposit] = await gw.deposits(USER)
    assert deposit["status"] == "credited"
    assert await gw.balances(USER) == {"BTC": 1_500_000}
    assert proxy.seen.methods["getrawmempool"] >= 1


async def test_a_stale_mempool_never_takes_a_deposit_out_of_its_block(
    gw: Gateway, ltc: LitecoinRpc, proxy: FaultProxy
) -> None:
    address = await gw.address(USER)
    txid = await ltc.send_to_script(address, 2_500_000)
    await gw.settle()
    [deposit] = await gw.deposits(USER)
    assert deposit["status"] == "seen"
    # This backend keeps answering the mempool it had: the transaction, mined meanwhile.
    proxy.faults.frozen_mempool = [txid]
    [block] = await ltc.mine(1)
    await gw.settle()
    [deposit] = await gw.deposits(USER)
    assert (deposit["status"], deposit["block_hash"]) == ("confirming", block)
    await ltc.mine(1)
    await gw.settle()
    [deposit] = await gw.deposits(USER)
    assert (deposit["status"], deposit["block_hash"]) == ("credited", block)
    assert await gw.balances(USER) == {"BTC": 2_500_000}


def _row(status: DepositStatus, block: int | None, reason: str | None = None) -> DepositInput:
    return DepositInput(
        network="bitcoin-devnet",
        txid="ab" * 32,
        position="vout:0",
        to_key="0014" + "11" * 20,
        amount=700,
        status=status,
        asset="BTC",
        decimals=8,
        user_id="wes",
        block_number=block,
        block_hash=None if block is None else f"{block:064x}",
        reason=reason,
        required_confirmations=2,
    )


@pytest.mark.parametrize(
    ("in_block", "reason"), [(DepositStatus.CONFIRMING, None), (DepositStatus.REJECTED, "dust")]
)
async def test_a_sighting_leaves_a_row_in_a_block_alone(
    db: asyncpg.Pool, in_block: DepositStatus, reason: str | None
) -> None:
    async with db.acquire() as conn:
        await deposits.upsert(conn, [_row(in_block, 120, reason)])
        await deposits.upsert(conn, [_row(DepositStatus.SEEN, None)])
        row = await conn.fetchrow("SELECT status, block_number, block_hash, reason FROM deposits")
    assert row is not None
    assert dict(row) == {
        "status": in_block.value,
        "block_number": 120,
        "block_hash": f"{120:064x}",
        "reason": reason,
    }


async def test_a_sighting_revives_a_row_whose_block_left_the_chain(db: asyncpg.Pool) -> None:
    async with db.acquire() as conn:
        await deposits.upsert(conn, [_row(DepositStatus.CONFIRMING, 120)])
        await deposits.rollback_above(conn, "bitcoin-devnet", 119)
        await deposits.upsert(conn, [_row(DepositStatus.SEEN, None)])
        row = await conn.fetchrow("SELECT status, block_number FROM deposits")
    assert row is not None and (row["status"], row["block_number"]) == ("seen", None)
