"""The Bitcoin ChainAdapter: blocks and mempool of a Bitcoin Core JSON-RPC node.

Speaks to bitcoind, hosted Bitcoin endpoints and (on the devnet) litecoind 0.21, which serves
the same RPC and script format. Reorgs are the watcher's business: this adapter reports the
canonical hashes it is served and the watcher compares them with the ones it stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

import structlog

from chaingate.chains.base import DerivedAddress, RpcClient, WatchedAddresses
from chaingate.chains.bitcoin import history
from chaingate.chains.bitcoin.addresses import BitcoinAddresses
from chaingate.chains.bitcoin.codec import parent_hash, spendable_outputs, transfers_in_block
from chaingate.chains.bitcoin.rpc import BitcoinRpc
from chaingate.domain import BlockRef, ChainHead, Network, ScanResult, Transfer
from chaingate.errors import ChainDataError

log = structlog.get_logger(__name__)

# Verbose blocks of ~2,000 transactions are several MB of JSON each: fetch a few at a time.
BLOCKS_PER_BATCH = 10
# New mempool transactions decoded per pending() call: a mempool of tens of thousands is read
# over several watcher steps instead of one fetch that must all succeed at once.
MEMPOOL_TXS_PER_CALL = 2_000


class BitcoinAdapter:
    def __init__(self, network: Network, rpc: RpcClient) -> None:
        self.network = network
        self.addresses = BitcoinAddresses(network)
        self.rpc = BitcoinRpc(rpc)
        self._client = rpc
        self.asset = network.native_asset.symbol
        # Mempool transactions already decoded, each as its spendable outputs in compact form
        # (script, index, satoshis): every transaction is fetched once while it stays in the
        # mempool, and is matched against the watched set on every read, so an address issued
        # after its payment was first decoded still sees the payment as pending.
        self._mempool: dict[str, tuple[tuple[str, int, int], ...]] = {}
        self.mempool_complete = False  # until one pending() has decoded every transaction

    async def head(self) -> ChainHead:
        return ChainHead(number=await self.rpc.getblockcount())

    async def block_ref(self, number: int) -> BlockRef:
        block_hash = await self.rpc.getblockhash(number)
        header = await self.rpc.getblockheader(block_hash, number)
        return BlockRef(number=number, hash=block_hash, parent_hash=parent_hash(header))

    def pinned(self, avoid: str | None = None) -> AbstractAsyncContextManager[str]:
        return self._client.pinned(avoid)

    async def scan(self, start: int, end: int, watched: WatchedAddresses) -> ScanResult:
        if start < 0 or end < start:
            raise ValueError(f"bad block range {start}..{end}")
        hashes = await self.rpc.getblockhashes(start, end)
        refs: list[BlockRef] = []
        transfers: list[Transfer] = []
        for offset in range(0, len(hashes), BLOCKS_PER_BATCH):
            chunk = hashes[offset : offset + BLOCKS_PER_BATCH]
            blocks = await self.rpc.getblocks(chunk, start + offset)
            if refs and parent_hash(blocks[0][0]) != refs[-1].hash:
                raise ChainDataError(f"block {blocks[0][0]['hash']} does not link to its parent")
            for block, txs in blocks:
                refs.append(BlockRef(block["height"], block["hash"], parent_hash(block)))
                transfers.extend(
                    transfers_in_block(self.network.name, self.asset, block, txs, watched)
                )
        log.debug(
            "bitcoin_scan", network=self.network.name, start=start, end=end, found=len(transfers)
        )
        return ScanResult(blocks=tuple(refs), transfers=tuple(transfers))

    async def pending(self, watched: WatchedAddresses) -> list[Transfer]:
        txids = await self.rpc.getrawmempool()
        current = set(txids)
        # Replaced (RBF), mined or dropped transactions leave the mempool and our view.
        for gone in [t for t in self._mempool if t not in current]:
            del self._mempool[gone]
        new = [t for t in txids if t not in self._mempool]
        batch = new[:MEMPOOL_TXS_PER_CALL]
        if batch:
            decoded = await self.rpc.getrawtransactions(batch)
            for txid, tx in decoded.items():
                self._mempool[txid] = spendable_outputs(tx)
            for txid in batch:  # left the mempool between the two calls: nothing to decode
                self._mempool.setdefault(txid, ())
        self.mempool_complete = len(new) <= MEMPOOL_TXS_PER_CALL
        return [
            Transfer(
                network=self.network.name,
                txid=txid,
                position=f"vout:{index}",
                to=script,
                amount=sats,
                asset=self.asset,
                coinbase=False,  # a coinbase is never in the mempool
            )
            for txid, outputs in self._mempool.items()
            for script, index, sats in outputs
            if bytes.fromhex(script) in watched
        ]

    async def addresses_with_history(self, addresses: Sequence[DerivedAddress]) -> list[int]:
        """AddressHistory: unspent outputs to the address (chains/bitcoin/history.py)."""
        return await history.addresses_with_history(self.network, self.rpc.client, addresses)

    async def aclose(self) -> None:
        self._mempool.clear()
