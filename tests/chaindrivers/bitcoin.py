"""The Bitcoin driver: litecoind regtest (SPEC section 11); invalidateblock for reorgs. A
dropped block's transactions return to the mempool, so the next block re-mines them, or a
conflicting transaction mined straight into the new branch makes them gone for good. ``orphan``
leaves them waiting in the mempool, and ``evict`` drops one from the mempool as expiry does."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal

from chaindrivers import CONFIRMATIONS
from chaingate.devnet.bitcoin import LitecoinRpc, coins_to_sats
from chaingate.devnet.manager import DevnetState
from chaingate.domain import Network
from harness import devnet_network


def ltc_rpc(state: DevnetState) -> LitecoinRpc:
    assert state.ltc_rpc_url is not None, "the devnet runs without litecoind"
    creds, host = state.ltc_rpc_url.removeprefix("http://").rsplit("@", 1)
    user, password = creds.split(":", 1)
    return LitecoinRpc(f"http://{host}", user, password, wallet=state.ltc_wallet)


async def mine_conflict(ltc: LitecoinRpc, txid: str) -> str:
    """Mine, straight into a block, a transaction spending ``txid``'s inputs back to the wallet.

    ``txid`` does not signal replaceability, so the node would refuse this conflict in its
    mempool; ``generateblock`` puts it in a block without the mempool, and the node then evicts
    ``txid`` from its mempool for good (its inputs are spent). Returns the conflict's txid.
    """
    tx = await ltc.call("getrawtransaction", txid, True, wallet=False)
    inputs = [{"txid": vin["txid"], "vout": vin["vout"]} for vin in tx["vin"]]
    spent = Decimal(0)
    for vin in tx["vin"]:
        prev = await ltc.call("getrawtransaction", vin["txid"], True, wallet=False)
        spent += prev["vout"][vin["vout"]]["value"]
    refund = await ltc.call("getnewaddress", "", "bech32")
    raw = await ltc.call("createrawtransaction", inputs, {refund: str(spent - Decimal("0.001"))})
    signed = await ltc.call("signrawtransactionwithwallet", raw)
    assert signed["complete"]
    await ltc.call("generateblock", await ltc.mining_address(), [signed["hex"]], wallet=False)
    decoded = await ltc.call("decoderawtransaction", signed["hex"], wallet=False)
    return str(decoded["txid"])


async def node_unspent(
    ltc: LitecoinRpc, scripts: Sequence[str], since: int = 0
) -> dict[tuple[str, int], int]:
    """The node's UTXO set of ``scripts`` (hex scriptPubKeys) from ``scantxoutset``: (txid,
    vout) -> satoshis, of the outputs created at height ``since`` or above (the session's node
    is shared: what earlier tests left on the same scripts is not the caller's)."""
    found = await ltc.call("scantxoutset", "start", [f"raw({s})" for s in scripts], wallet=False)
    return {
        (u["txid"], u["vout"]): coins_to_sats(Decimal(str(u["amount"])))
        for u in found["unspents"]
        if u["height"] >= since
    }


class BitcoinDriver:
    kind = "bitcoin"
    native = "BTC"
    token: str | None = None
    dust = 5_000  # sats; the minimum is 10,000

    def __init__(self, devnet: DevnetState, ltc: LitecoinRpc) -> None:
        assert devnet.ltc_rpc_url is not None
        self.url = devnet.ltc_rpc_url
        self.ltc = ltc
        self.sent: set[str] = set()

    async def height(self) -> int:
        return int(await self.ltc.call("getblockcount", wallet=False))

    async def network(self) -> Network:
        await self.ltc.mine(1)  # whatever an earlier test left in the mempool, below our start
        start = await self.height() + 1
        return devnet_network(
            "bitcoin-devnet", self.url, start_height=start, confirmations=CONFIRMATIONS
        )

    async def pay(self, address: str, amount: int) -> str:
        txid = await self.ltc.send_to_script(address, amount)
        self.sent.add(txid)
        await self.ltc.mine(1)
        return txid

    async def pay_token(self, address: str, amount: int) -> str:
        raise NotImplementedError("Bitcoin has no tokens")

    async def pay_unlisted(self, address: str, amount: int) -> tuple[str, str]:
        raise NotImplementedError("Bitcoin has no tokens")

    async def pay_failed(self, address: str, amount: int) -> str:
        raise NotImplementedError("a Bitcoin transaction is valid or never mined")

    async def mine(self, blocks: int) -> None:
        await self.ltc.mine(blocks)

    async def mark(self) -> int:
        return await self.height()

    async def reorg(self, mark: object, *, remine: bool) -> None:
        assert isinstance(mark, int)
        tip = await self.height()
        first = str(await self.ltc.call("getblockhash", mark + 1, wallet=False))
        dropped: list[str] = []
        for number in range(mark + 1, tip + 1):
            block_hash = await self.ltc.call("getblockhash", number, wallet=False)
            block = await self.ltc.call("getblock", block_hash, 1, wallet=False)
            # Our payments only: the coinbase (and an MWEB HogEx) go with their block.
            dropped.extend(t for t in block["tx"] if t in self.sent)
        await self.ltc.invalidate(first)
        if not remine:
            for txid in dropped:
                await mine_conflict(self.ltc, txid)
        else:
            # Straight into the first block of the new branch, as a miner would take them back.
            raws = [await self.ltc.call("getrawtransaction", t, wallet=False) for t in dropped]
            await self.ltc.call(
                "generateblock", await self.ltc.mining_address(), raws, wallet=False
            )
        await self.ltc.mine(tip - mark + 1)  # longer than the dropped branch

    async def orphan(self, mark: int, *, longer_by: int = 1) -> None:
        """Replace every block above ``mark`` by a longer branch of EMPTY blocks: the dropped
        blocks' transactions go back to the node's mempool and wait there."""
        tip = await self.height()
        await self.ltc.invalidate(str(await self.ltc.call("getblockhash", mark + 1, wallet=False)))
        for _ in range(tip - mark + longer_by):
            await self.ltc.call("generateblock", await self.ltc.mining_address(), [], wallet=False)

    async def evict(self, txid: str) -> None:
        """Drop ``txid`` (and its descendants) from the node's mempool the way expiry does: the
        node's clock jumps past -mempoolexpiry (336 h), one more transaction makes the node
        expire the old ones, and the clock comes back. No block is made meanwhile."""
        await self.ltc.call("setmocktime", int(time.time()) + 15 * 24 * 3600, wallet=False)
        try:
            await self.ltc.send_to_script(await self.ltc.mining_address(), 100_000)
        finally:
            await self.ltc.call("setmocktime", 0, wallet=False)
        assert txid not in await self.ltc.call("getrawmempool", wallet=False)


@asynccontextmanager
async def bitcoin_driver(devnet: DevnetState) -> AsyncIterator[BitcoinDriver]:
    async with ltc_rpc(devnet) as ltc:
        yield BitcoinDriver(devnet, ltc)
