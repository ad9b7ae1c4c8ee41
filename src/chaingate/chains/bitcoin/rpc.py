"""Typed Bitcoin Core JSON-RPC calls over the provider pool, checked where they enter.

Every block is checked against what was asked (hash, height), against itself (the header
fields hash to the block hash, the txids build the merkle root) and against its neighbour
(``previousblockhash`` links consecutive blocks). A bad answer raises ChainDataError.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from chaingate.chains.base import Check, RpcClient
from chaingate.domain import Endpoint

if TYPE_CHECKING:
    from chaingate.providers import EndpointPool
from chaingate.chains.bitcoin.codec import (
    BlockHeader,
    RawBlock,
    check_block,
    check_header,
    check_tx,
    parent_hash,
)
from chaingate.chains.bitcoin.rawtx import DecodedTx
from chaingate.errors import BlockNotFoundError, ChainDataError, RpcError

VERBOSE_BLOCK = 2  # header plus fully decoded transactions
RPC_INVALID_ADDRESS_OR_KEY = -5  # Core's answer for an unknown block or transaction
RPC_INVALID_PARAMETER = -8  # Core's answer for a height above the tip
RPC_VERIFY_ALREADY_IN_CHAIN = -27  # sendrawtransaction: the transaction is known or mined
TX_CHUNK = 200  # mempool transactions per batch


def sat_per_kvb(rate: object, what: str) -> int:
    """A node's fee rate in BTC/kvB (a JSON number) as integer sat/kvB, read through its
    decimal text, never a float. ChainDataError for anything but a positive whole number of
    satoshis."""
    if isinstance(rate, bool) or not isinstance(rate, int | float | Decimal | str):
        raise ChainDataError(f"{what}: not a number: {rate!r}")
    try:
        sats = Decimal(str(rate)) * 100_000_000
    except ArithmeticError:
        raise ChainDataError(f"{what}: not a number: {rate!r}") from None
    if not sats.is_finite() or sats <= 0 or sats != sats.to_integral_value():
        raise ChainDataError(f"{what}: a strange fee rate {rate!r}")
    return int(sats)


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


def _hash_check(result: Any) -> None:
    if not _is_hash(result):
        raise ChainDataError(f"expected a block hash, got {result!r:.80}")


def _tx_check(txid: str) -> Check:
    def check(result: Any) -> None:
        if result is not None:
            check_tx(result, txid)

    return check


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
        calls = [("getblockhash", [h]) for h in range(start, end + 1)]
        try:
            results = await self.client.batch(calls, checks=[_hash_check] * len(calls))
        except RpcError as exc:
            if exc.rpc_code == RPC_INVALID_PARAMETER:
                raise BlockNotFoundError(f"blocks {start}..{end} are not all served yet") from exc
            raise
        if len(results) != end - start + 1:
            raise ChainDataError(f"getblockhash {start}..{end}: malformed answer")
        return cast(list[str], results)

    async def getblockheader(self, block_hash: str, height: int) -> BlockHeader:
        def check(header: Any) -> None:
            if not isinstance(header, dict):
                raise ChainDataError(f"getblockheader {block_hash}: not an object")
            check_header(cast(BlockHeader, header), block_hash, height)

        result = await self.client.request("getblockheader", [block_hash, True], check=check)
        return cast(BlockHeader, result)

    async def estimate_fee_rate(self, target: int = 2) -> int | None:
        """``estimatesmartfee`` (CONSERVATIVE) in sat/kvB; None when the node has no estimate
        (a quiet regtest, a freshly started node)."""
        result = await self.client.request("estimatesmartfee", [target, "CONSERVATIVE"])
        rate = result.get("feerate") if isinstance(result, dict) else None
        return None if rate is None else sat_per_kvb(rate, "estimatesmartfee feerate")

    async def incremental_fee_rate(self) -> int | None:
        """``getnetworkinfo``'s ``incrementalfee`` in sat/kvB: how much more per vbyte a BIP125
        replacement must pay than what it replaces, by this node's policy; None when absent."""
        result = await self.client.request("getnetworkinfo", [])
        rate = result.get("incrementalfee") if isinstance(result, dict) else None
        if rate is None or (isinstance(rate, int | float | Decimal) and rate == 0):
            return None  # not said, or no minimum: the caller's default applies
        return sat_per_kvb(rate, "getnetworkinfo incrementalfee")

    async def send_raw_transaction(self, raw_hex: str, txid: str) -> bool:
        """Send signed bytes; True when the node took them now, False when it already had
        them (in its mempool or chain). Any other refusal raises RpcError."""
        try:
            result = await self.client.request("sendrawtransaction", [raw_hex])
        except RpcError as exc:
            if exc.rpc_code == RPC_VERIFY_ALREADY_IN_CHAIN:
                return False
            raise
        if result != txid:
            raise ChainDataError(f"sendrawtransaction answered {result!r} for {txid}")
        return True

    async def in_mempool(self, txid: str) -> bool:
        try:
            await self.client.request("getmempoolentry", [txid])
        except RpcError as exc:
            if exc.rpc_code == RPC_INVALID_ADDRESS_OR_KEY:
                return False
            raise
        return True

    async def getblocks(
        self, hashes: Sequence[str], start: int
    ) -> list[tuple[RawBlock, list[DecodedTx]]]:
        """Verbose blocks for consecutive ``hashes`` from height ``start``, each with its
        transactions decoded from their bytes. Each block is checked inside the pool (the hash
        asked for is the hash served, the header hashes to it, the transactions to the merkle
        root), so the endpoint that served a bad one pays for it."""
        decoded: dict[str, list[DecodedTx]] = {}

        def check_for(want: str, height: int) -> Check:
            def check(result: Any) -> None:
                if not isinstance(result, dict):
                    raise ChainDataError(f"getblock {want}: not a verbose block")
                decoded[want] = check_block(cast(RawBlock, result), want, height)

            return check

        calls = [("getblock", [h, VERBOSE_BLOCK]) for h in hashes]
        checks = [check_for(h, start + i) for i, h in enumerate(hashes)]
        results = await self.client.batch(calls, checks=checks)
        if len(results) != len(hashes):
            raise ChainDataError("getblock batch: wrong number of answers")
        blocks: list[tuple[RawBlock, list[DecodedTx]]] = []
        for want, result in zip(hashes, results, strict=True):
            block = cast(RawBlock, result)
            if blocks and parent_hash(block) != blocks[-1][0]["hash"]:
                raise ChainDataError(f"block {want} does not link to the block before it")
            blocks.append((block, decoded[want]))
        return blocks

    async def getrawmempool(self) -> list[str]:
        def check(result: Any) -> None:
            if not isinstance(result, list) or not all(_is_hash(t) for t in result):
                raise ChainDataError("getrawmempool: malformed answer")

        return cast(list[str], await self.client.request("getrawmempool", check=check))

    async def getrawtransactions(self, txids: Sequence[str]) -> dict[str, DecodedTx]:
        """Transactions by txid, decoded from their bytes; those that left the mempool
        meanwhile are absent."""
        found: dict[str, DecodedTx] = {}
        for i in range(0, len(txids), TX_CHUNK):
            chunk = txids[i : i + TX_CHUNK]
            checks = [_tx_check(t) for t in chunk]
            try:
                results: list[Any] = await self.client.batch(
                    [("getrawtransaction", [t, True]) for t in chunk], checks=checks
                )
            except RpcError:
                # A transaction can leave the mempool between getrawmempool and this call.
                results = [await self._getrawtransaction_or_none(t) for t in chunk]
            for want, result in zip(chunk, results, strict=True):
                if result is not None:
                    found[want] = check_tx(result, want)
        return found

    async def _getrawtransaction_or_none(self, txid: str) -> Any:
        try:
            return await self.client.request(
                "getrawtransaction", [txid, True], check=_tx_check(txid)
            )
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
