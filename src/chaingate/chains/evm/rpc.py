"""Typed EVM JSON-RPC calls over the provider pool, with every answer checked where it enters.

A node is not trusted: a block must carry the number asked for and well-formed hashes, receipts
must belong to the block asked for, logs must lie inside the range asked for. Anything else is a
``ChainDataError``, never data.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, cast

import structlog

from chaingate.chains.base import RpcClient
from chaingate.domain import Endpoint

if TYPE_CHECKING:
    from chaingate.providers import EndpointPool
from chaingate.errors import BlockNotFoundError, ChainDataError, RequestTooLargeError, RpcError

log = structlog.get_logger(__name__)

_HASH32 = re.compile(r"0x[0-9a-fA-F]{64}")
CALL_TRACER = {"tracer": "callTracer"}


class RawTx(TypedDict):
    hash: str
    blockHash: str
    blockNumber: str
    transactionIndex: str
    to: str | None  # None for a contract creation
    value: str
    input: str
    # "from", "nonce", "gas", fees and signature fields are present but unused here


class RawBlock(TypedDict):
    number: str
    hash: str
    parentHash: str
    timestamp: str
    transactions: list[RawTx]  # full objects (get_blocks(full_txs=True)); hashes otherwise


class RawLog(TypedDict):
    address: str
    topics: list[str]
    data: str
    blockNumber: str
    blockHash: str
    transactionHash: str
    transactionIndex: str
    logIndex: str
    removed: NotRequired[bool]


class RawReceipt(TypedDict):
    transactionHash: str
    transactionIndex: str
    blockHash: str
    blockNumber: str
    status: str  # "0x1" success, "0x0" failure (post-Byzantium)
    to: str | None
    logs: list[RawLog]
    gasUsed: NotRequired[str]
    effectiveGasPrice: NotRequired[str]


class RawCallFrame(TypedDict):
    type: str  # CALL, STATICCALL, DELEGATECALL, CALLCODE, CREATE, CREATE2, SELFDESTRUCT
    to: NotRequired[str]
    value: NotRequired[str]  # absent on STATICCALL / DELEGATECALL
    input: NotRequired[str]
    error: NotRequired[str]  # the frame reverted: its effects, and its children's, are undone
    calls: NotRequired[list[RawCallFrame]]


class RawTxTrace(TypedDict):
    txHash: NotRequired[str]
    result: RawCallFrame
    error: NotRequired[str]


def is_hash32(value: object) -> bool:
    return isinstance(value, str) and _HASH32.fullmatch(value) is not None


def hex_int(value: object, what: str) -> int:
    """A JSON-RPC quantity ("0x1a") as int; ChainDataError when it is not one."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ChainDataError(f"{what}: expected a hex quantity, got {value!r:.80}")
    try:
        return int(value, 16)
    except ValueError as exc:
        raise ChainDataError(f"{what}: expected a hex quantity, got {value!r:.80}") from exc


class SendOutcome(StrEnum):
    ACCEPTED = "accepted"
    ALREADY_KNOWN = "already_known"  # the node has these bytes already: sent
    NONCE_TOO_LOW = "nonce_too_low"  # the nonce is used: by these bytes, or by another tx
    UNDERPRICED = "underpriced"  # another tx holds the nonce in the mempool at a higher fee


# Nodes say these as JSON-RPC error text (geth, erigon, nethermind, anvil); the edge turns them
# into outcomes so nothing further in classifies by message.
_SEND_OUTCOMES = (
    ("already known", SendOutcome.ALREADY_KNOWN),
    ("known transaction", SendOutcome.ALREADY_KNOWN),
    ("already imported", SendOutcome.ALREADY_KNOWN),
    ("nonce too low", SendOutcome.NONCE_TOO_LOW),
    ("nonce is too low", SendOutcome.NONCE_TOO_LOW),
    ("replacement transaction underpriced", SendOutcome.UNDERPRICED),
    ("underpriced", SendOutcome.UNDERPRICED),
)


class EvmRpc:
    """EVM calls over an ``RpcClient`` (in production a ``providers.EndpointPool``)."""

    def __init__(self, client: RpcClient, network: str) -> None:
        self.client = client
        self.network = network

    async def block_number(self) -> int:
        return hex_int(await self.client.request("eth_blockNumber", []), "eth_blockNumber")

    async def get_blocks(self, numbers: Sequence[int], full_txs: bool = True) -> list[RawBlock]:
        """Blocks ``numbers`` in one batch, each checked to be the block asked for."""
        calls = [("eth_getBlockByNumber", [hex(n), full_txs]) for n in numbers]
        results = await self.client.batch(calls) if calls else []
        return [
            self._checked_block(n, raw, full_txs) for n, raw in zip(numbers, results, strict=True)
        ]

    async def get_block_receipts(
        self, numbers: Sequence[int], block_hashes: Sequence[str] | None = None
    ) -> list[list[RawReceipt]]:
        """The receipts of each block (eth_getBlockReceipts), one batch.

        With ``block_hashes`` the receipts must belong to exactly those blocks (so a reorg
        between fetching a block and its receipts is an error, not a silent mix of branches).
        """
        calls = [("eth_getBlockReceipts", [hex(n)]) for n in numbers]
        results = await self.client.batch(calls) if calls else []
        hashes: Sequence[str | None] = block_hashes or [None] * len(numbers)
        return [
            self._checked_receipts(n, h, raw)
            for n, h, raw in zip(numbers, hashes, results, strict=True)
        ]

    async def get_logs(
        self,
        from_block: int,
        to_block: int,
        topics: Sequence[str | list[str] | None],
        addresses: Sequence[str] | None = None,
        max_range: int = 10_000,
    ) -> list[RawLog]:
        """eth_getLogs over ``from_block..to_block`` (inclusive), in chunks of at most
        ``max_range`` blocks; a chunk the endpoint refuses as too large is halved."""
        logs: list[RawLog] = []
        start, span = from_block, max(1, max_range)
        while start <= to_block:
            end = min(to_block, start + span - 1)
            try:
                chunk = await self._logs_once(start, end, topics, addresses)
            except RequestTooLargeError:
                if end == start:
                    raise
                span = max(1, (end - start + 1) // 2)
                log.info("evm_log_range_halved", network=self.network, span=span)
                continue
            logs.extend(chunk)
            start = end + 1
        return logs

    async def trace_blocks(self, numbers: Sequence[int]) -> list[list[RawTxTrace]]:
        """callTracer traces of every transaction of each block (debug_traceBlockByNumber)."""
        calls = [("debug_traceBlockByNumber", [hex(n), CALL_TRACER]) for n in numbers]
        results = await self.client.batch(calls) if calls else []
        return [self._checked_traces(n, raw) for n, raw in zip(numbers, results, strict=True)]

    async def trace_transactions(self, txids: Sequence[str]) -> list[RawCallFrame]:
        """callTracer trace of each transaction (debug_traceTransaction), one batch; the
        fallback for endpoints that cannot trace whole blocks."""
        calls = [("debug_traceTransaction", [txid, CALL_TRACER]) for txid in txids]
        results = await self.client.batch(calls) if calls else []
        for txid, frame in zip(txids, results, strict=True):
            if not isinstance(frame, dict) or "type" not in frame:
                raise ChainDataError(f"{self.network}: malformed trace of {txid}")
        return cast(list[RawCallFrame], results)

    async def get_balances(
        self, addresses: Sequence[str], height: int, block_hash: str | None = None
    ) -> list[int]:
        """eth_getBalance of each address at one block, batched (cut to the endpoints' batch
        size by the pool). With ``block_hash`` the block is named by hash (EIP-1898), so the
        answer is that block's state even if another block has taken its height since."""
        block: str | dict[str, str] = {"blockHash": block_hash} if block_hash else hex(height)
        calls = [("eth_getBalance", [address, block]) for address in addresses]
        results = await self.client.batch(calls) if calls else []
        return [self._checked_balance(a, raw) for a, raw in zip(addresses, results, strict=True)]

    # --- outgoing: what the planner, the broadcaster and the tracker ask ---------------------

    async def fee_history(self, blocks: int = 5, percentile: float = 50.0) -> dict[str, Any]:
        raw = await self.client.request("eth_feeHistory", [hex(blocks), "latest", [percentile]])
        if not isinstance(raw, dict) or not isinstance(raw.get("baseFeePerGas"), list):
            raise ChainDataError(f"{self.network}: malformed eth_feeHistory answer")
        return raw

    async def transaction_count(self, address: str, block: str | int = "pending") -> int:
        tag = hex(block) if isinstance(block, int) else block
        raw = await self.client.request("eth_getTransactionCount", [address, tag])
        return hex_int(raw, f"{self.network}: eth_getTransactionCount")

    async def estimate_gas(self, call: dict[str, str]) -> int:
        return hex_int(await self.client.request("eth_estimateGas", [call]), "eth_estimateGas")

    async def send_raw_transaction(self, raw_hex: str, txid: str) -> SendOutcome:
        """Send signed bytes; resending the same bytes is harmless, so failover may resend.
        What a node says about a transaction it already has is an outcome, not an error."""
        try:
            answer = await self.client.request("eth_sendRawTransaction", [raw_hex])
        except RpcError as exc:
            text = str(exc).lower()
            for needle, outcome in _SEND_OUTCOMES:
                if needle in text:
                    return outcome
            raise
        if not isinstance(answer, str) or answer.lower() != txid.lower():
            raise ChainDataError(f"{self.network}: eth_sendRawTransaction answered another hash")
        return SendOutcome.ACCEPTED

    async def receipt(self, txid: str) -> RawReceipt | None:
        raw = await self.client.request("eth_getTransactionReceipt", [txid])
        if raw is None:
            return None
        if not isinstance(raw, dict) or str(raw.get("transactionHash", "")).lower() != txid.lower():
            raise ChainDataError(f"{self.network}: receipt of another transaction than {txid}")
        return cast(RawReceipt, raw)

    async def transaction(self, txid: str) -> RawTx | None:
        raw = await self.client.request("eth_getTransactionByHash", [txid])
        if raw is None:
            return None
        if not isinstance(raw, dict) or str(raw.get("hash", "")).lower() != txid.lower():
            raise ChainDataError(f"{self.network}: eth_getTransactionByHash of another hash")
        return cast(RawTx, raw)

    # --- checks ---------------------------------------------------------------------------

    def _checked_balance(self, address: str, raw: Any) -> int:
        value = hex_int(raw, f"{self.network}: eth_getBalance of {address}")
        if value >= 2**256:
            raise ChainDataError(f"{self.network}: balance of {address} exceeds 2^256")
        return value

    def _checked_block(self, number: int, raw: Any, full_txs: bool) -> RawBlock:
        if raw is None:
            raise BlockNotFoundError(f"{self.network}: block {number} not served")
        if not isinstance(raw, dict):
            raise ChainDataError(f"{self.network}: block {number} is not an object")
        if hex_int(raw.get("number"), "block number") != number:
            raise ChainDataError(
                f"{self.network}: asked for block {number}, got {raw.get('number')!r:.20}"
            )
        if not (is_hash32(raw.get("hash")) and is_hash32(raw.get("parentHash"))):
            raise ChainDataError(f"{self.network}: block {number} has malformed hashes")
        txs = raw.get("transactions")
        if not isinstance(txs, list):
            raise ChainDataError(f"{self.network}: block {number} has no transaction list")
        if full_txs:
            block_hash = raw["hash"]
            for tx in txs:
                # A tx object from another block means the node mixed branches.
                if not isinstance(tx, dict) or tx.get("blockHash", block_hash) != block_hash:
                    raise ChainDataError(
                        f"{self.network}: block {number} holds a foreign transaction"
                    )
        return cast(RawBlock, raw)

    def _checked_receipts(self, number: int, block_hash: str | None, raw: Any) -> list[RawReceipt]:
        if raw is None:
            raise BlockNotFoundError(f"{self.network}: receipts of block {number} not served")
        if not isinstance(raw, list):
            raise ChainDataError(f"{self.network}: receipts of block {number} not a list")
        expected = block_hash
        for receipt in raw:
            if not isinstance(receipt, dict):
                raise ChainDataError(f"{self.network}: malformed receipt in block {number}")
            if hex_int(receipt.get("blockNumber"), "receipt blockNumber") != number:
                raise ChainDataError(f"{self.network}: receipt from another block than {number}")
            got = receipt.get("blockHash")
            if not is_hash32(got) or (expected is not None and got != expected):
                raise ChainDataError(
                    f"{self.network}: receipts of block {number} belong to another block hash"
                )
            expected = got  # all receipts of one answer must share one block hash
        return cast(list[RawReceipt], raw)

    def _checked_traces(self, number: int, raw: Any) -> list[RawTxTrace]:
        if not isinstance(raw, list):
            raise ChainDataError(f"{self.network}: traces of block {number} not a list")
        for entry in raw:
            if not isinstance(entry, dict) or not isinstance(entry.get("result"), dict):
                raise ChainDataError(
                    f"{self.network}: trace in block {number} failed: "
                    f"{entry.get('error') if isinstance(entry, dict) else entry!r:.80}"
                )
        return cast(list[RawTxTrace], raw)

    async def _logs_once(
        self,
        start: int,
        end: int,
        topics: Sequence[str | list[str] | None],
        addresses: Sequence[str] | None,
    ) -> list[RawLog]:
        query: dict[str, Any] = {
            "fromBlock": hex(start),
            "toBlock": hex(end),
            "topics": list(topics),
        }
        if addresses is not None:
            query["address"] = list(addresses)
        raw = await self.client.request("eth_getLogs", [query])
        if not isinstance(raw, list):
            raise ChainDataError(f"{self.network}: eth_getLogs answer is not a list")
        for entry in raw:
            if not isinstance(entry, dict):
                raise ChainDataError(f"{self.network}: malformed log entry")
            number = hex_int(entry.get("blockNumber"), "log blockNumber")
            if not start <= number <= end:
                raise ChainDataError(
                    f"{self.network}: log from block {number} outside {start}..{end}"
                )
            if entry.get("removed"):
                raise ChainDataError(f"{self.network}: eth_getLogs returned a removed log")
        return cast(list[RawLog], raw)


async def head_probe(pool: EndpointPool, endpoint: Endpoint) -> int:
    """One endpoint's head height, for the pool's health tracking."""
    result = await pool.request_on(endpoint, "eth_blockNumber", [])
    if not isinstance(result, str) or not result.startswith("0x"):
        raise ChainDataError(f"{endpoint.name}: eth_blockNumber answered {result!r}")
    return int(result, 16)
