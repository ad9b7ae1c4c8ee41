"""TronAdapter: the ChainAdapter the watcher drives for a TRON network."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

import structlog

from chaingate.chains.base import DerivedAddress, HttpClient, WatchedAddresses
from chaingate.chains.tron import history
from chaingate.chains.tron.addresses import TronAddresses
from chaingate.chains.tron.codec import decode_block, needs_infos
from chaingate.chains.tron.rpc import TronRpc, block_number
from chaingate.domain import BlockRef, ChainHead, Network, ScanResult, Transfer
from chaingate.errors import ChainDataError

log = structlog.get_logger(__name__)


class TronAdapter:
    def __init__(self, network: Network, http: HttpClient) -> None:
        self.network = network
        self.addresses = TronAddresses(network)
        self.rpc = TronRpc(http)
        self._client = http

    async def head(self) -> ChainHead:
        head = block_number(await self.rpc.now_block())
        solid = block_number(await self.rpc.solid_now_block())
        # Finality is the stricter of the solidified head and the registry's confirmations;
        # the watcher applies the confirmation count, the adapter reports the solid head.
        return ChainHead(number=head, finalized=min(solid, head))

    async def block_ref(self, number: int) -> BlockRef:
        block = await self.rpc.block_by_num(number)
        raw = block["block_header"]["raw_data"]
        return BlockRef(number=number, hash=block["blockID"], parent_hash=raw["parentHash"])

    def pinned(self, avoid: str | None = None) -> AbstractAsyncContextManager[str]:
        return self._client.pinned(avoid)

    async def scan(self, start: int, end: int, watched: WatchedAddresses) -> ScanResult:
        if end < start:
            raise ValueError(f"empty scan range {start}..{end}")
        blocks = await self.rpc.blocks_range(start, end + 1)
        refs: list[BlockRef] = []
        transfers: list[Transfer] = []
        for block, contracts in blocks:
            number = block_number(block)
            infos = await self.rpc.tx_infos_by_block(number) if needs_infos(contracts) else []
            transfers.extend(decode_block(self.network, block, infos, watched, contracts))
            raw = block["block_header"]["raw_data"]
            refs.append(BlockRef(number, block["blockID"], raw["parentHash"]))
        if refs and refs[0].number != start:
            raise ChainDataError(f"scan asked from {start}, got {refs[0].number}")
        log.debug(
            "tron_scan", network=self.network.name, start=start, end=end, transfers=len(transfers)
        )
        return ScanResult(blocks=tuple(refs), transfers=tuple(transfers))

    mempool_complete = True  # no mempool view: nothing to be incomplete

    async def pending(self, watched: WatchedAddresses) -> list[Transfer]:
        return []  # java-tron exposes no mempool over the HTTP subset hosted endpoints serve

    async def addresses_with_history(self, addresses: Sequence[DerivedAddress]) -> list[int]:
        """AddressHistory: activated account or TRC-20 balance (chains/tron/history.py)."""
        return await history.addresses_with_history(self.network, self.rpc.http, addresses)

    async def aclose(self) -> None:
        return None
