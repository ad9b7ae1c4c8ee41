"""Typed Bitcoin Core JSON-RPC calls over the provider pool, checked where they enter.

Every block is checked against what was asked (hash, height), against itself (the header
fields hash to the block hash, the txids build the merkle root) and against its neighbour
(``previousblockhash`` links consecutive blocks). A bad answer raises ChainDataError.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from chaingate.chains.base import RpcClient
from chaingate.domain import Endpoint

if TYPE_CHECKING:
    from chaingate.providers import EndpointPool
from chaingate.chains.bitcoin.codec import (
    BlockHeader,
    RawBlock,
    RawTx,
    check_block,
    check_header,
    parent_hash,
)
from chaingate.errors import BlockNotFoundError, ChainDataError, RpcError

VERBOSE_BLOCK = 2  # header plus fully decoded transactions
RPC_INVALID_ADDRESS_OR_KEY = -5  # Core's answer for an unknown block or transaction
RPC_INVALID_PARAMETER = -8  # Core's answer for a height above the tip
TX_CHUNK = 200  # mempool transactions per batch


def _is_hash(value: object) -> bool:
    if not isinstance(value, str) or len(value) != 64:
        return False
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return value == value.lower()


def _require_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ChainDataError(f"{what} is not a non-negative integer: {value!r}")
    return value


class BitcoinRpc:
    """The Bitcoin Core RPC subset the adapter uses."""

    def __init__(self, client: RpcClient) -> None:
        self.client = client

    async def getblockcount(self) -> int:
        return _require_int(await self.client.request("getblockcount"), "getblockcount")

    async def getbestblockhash(self) -> str:
        result = await self.client.request("getbestblockhash")
        if not _is_hash(result):
            raise ChainDataError("getbestblockhash did not return a block hash")
        return cast(str, result)

    async def getblockhash(self, height: int) -> str:
        return (await self.getblockhashes(height, height))[0]

    async def getblockhashes(self, start: int, end: int) -> list[str]:
        """Hashes of the canonical blocks ``start..end``; BlockNotFoundError above the tip."""
        try:
            results = await self.client.batch(
                [("getblockhash", [h]) for h in range(start, end + 1)]
            )
        except RpcError as exc:
            if exc.rpc_code == RPC_INVALID_PARAMETER:
                raise BlockNotFoundError(f"blocks {start}..{end} are not all served yet") from exc
            raise
        if len(results) != end - start + 1 or not all(_is_hash(r) for r in results):
            raise ChainDataError(f"getblockhash {start}..{end}: malformed answer")
        return cast(list[str], results)

    async def getblockheader(self, block_hash: str, height: int) -> BlockHeader:
        header = await self.client.request("getblockheader", [block_hash, True])
        if not isinstance(header, dict):
            raise ChainDataError(f"getblockheader {block_hash}: not an object")
        checked = cast(BlockHeader, header)
        check_header(checked, block_hash, height)
        return checked

    async def getblocks(self, hashes: Sequence[str], start: int) -> list[RawBlock]:
        """Verbose blocks for consecutive ``hashes`` from height ``start``, all checked."""
        results = await self.client.batch([("getblock", [h, VERBOSE_BLOCK]) for h in hashes])
        if len(results) != len(hashes):
            raise ChainDataError("getblock batch: wrong number of answers")
        blocks: list[RawBlock] = []
        for offset, (want, result) in enumerate(zip(hashes, results, strict=True)):
            if not isinstance(result, dict) or not isinstance(result.get("tx"), list):
                raise ChainDataError(f"getblock {want}: not a verbose block")
            block = cast(RawBlock, result)
            check_block(block, want, start + offset)
            if blocks and parent_hash(block) != blocks[-1]["hash"]:
                raise ChainDataError(f"block {want} does not link to the block before it")
            blocks.append(block)
        return blocks

    async def getrawmempool(self) -> list[str]:
        result = await self.client.request("getrawmempool")
        if not isinstance(result, list) or not all(_is_hash(t) for t in result):
            raise ChainDataError("getrawmempool: malformed answer")
        return cast(list[str], result)

    async def getrawtransactions(self, txids: Sequence[str]) -> dict[str, RawTx]:
        """Decoded transactions by txid; those that left the mempool meanwhile are absent."""
        found: dict[str, RawTx] = {}
        for i in range(0, len(txids), TX_CHUNK):
            chunk = txids[i : i + TX_CHUNK]
            try:
                results: list[Any] = await self.client.batch(
                    [("getrawtransaction", [t, True]) for t in chunk]
                )
            except RpcError:
                # A transaction can leave the mempool between getrawmempool and this call.
                results = [await self._getrawtransaction_or_none(t) for t in chunk]
            for want, result in zip(chunk, results, strict=True):
                if result is None:
                    continue
                if not isinstance(result, dict) or result.get("txid") != want:
                    raise ChainDataError(f"getrawtransaction {want}: another or no transaction")
                found[want] = cast(RawTx, result)
        return found

    async def _getrawtransaction_or_none(self, txid: str) -> Any:
        try:
            return await self.client.request("getrawtransaction", [txid, True])
        except RpcError as exc:
            if exc.rpc_code == RPC_INVALID_ADDRESS_OR_KEY:
                return None
            raise


async def head_probe(pool: EndpointPool, endpoint: Endpoint) -> int:
    """One endpoint's head height (getblockcount), for the pool's health tracking."""
    result = await pool.request_on(endpoint, "getblockcount", [])
    if not isinstance(result, int) or isinstance(result, bool) or result < 0:
        raise ChainDataError(f"{endpoint.name}: getblockcount answered {result!r}")
    return result


async def genesis_probe(pool: EndpointPool, endpoint: Endpoint) -> str:
    """The hash of the block one endpoint serves at height 0, for the pool's identity check."""
    result = await pool.request_on(endpoint, "getblockhash", [0])
    if not _is_hash(result):
        raise ChainDataError(f"{endpoint.name}: getblockhash 0 answered no block hash")
    return cast(str, result)
