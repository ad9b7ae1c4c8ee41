"""Typed EVM JSON-RPC calls over the provider pool, with every answer checked where it enters.

A node is not trusted: a block must carry the number asked for and well-formed hashes, receipts
must belong to the block asked for, logs must lie inside the range asked for. Anything else is a
``ChainDataError``, never data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, cast

import structlog

from chaingate.chains.base import Check, RpcClient
from chaingate.chains.evm.header import header_hash
from chaingate.chains.evm.hexdata import hex_int, is_hash32
from chaingate.chains.evm.receiptcheck import check_receipts_cover
from chaingate.domain import Endpoint

if TYPE_CHECKING:
    from chaingate.providers import EndpointPool
from chaingate.errors import (
    BlockNotFoundError,
    ChainDataError,
    IncompleteLogsError,
    RequestTooLargeError,
    RpcError,
)

log = structlog.get_logger(__name__)

BLOOM_HEX_LEN = 2 + 512  # "0x" and 256 bytes
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
    logsBloom: str
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
    """EVM calls over an ``RpcClient`` (in production a ``providers.EndpointPool``).

    Every check runs inside the pool (``check=``/``checks=``), so a malformed or wrong answer is
    booked against the endpoint that gave it, which is failed over and benched. Only a block
    that is not served at all (``null``) is judged after the pool returns: that is no proof of
    a lie (the endpoint may be a block behind) and the watcher decides what it means.
    """

    def __init__(self, client: RpcClient, network: str) -> None:
        self.client = client
        self.network = network

    async def block_number(self) -> int:
        raw = await self.client.request("eth_blockNumber", [], check=_quantity("eth_blockNumber"))
        return hex_int(raw, "eth_blockNumber")

    async def get_blocks(self, numbers: Sequence[int], full_txs: bool = True) -> list[RawBlock]:
        """Blocks ``numbers`` in one batch, each checked to be the block asked for."""
        calls = [("eth_getBlockByNumber", [hex(n), full_txs]) for n in numbers]
        checks = [self._block_check(n, full_txs) for n in numbers]
        results = await self.client.batch(calls, checks=checks) if calls else []
        for number, raw in zip(numbers, results, strict=True):
            if raw is None:
                raise BlockNotFoundError(f"{self.network}: block {number} not served")
        return cast(list[RawBlock], results)

    async def get_block_receipts(
        self, numbers: Sequence[int], block_hashes: Sequence[str] | None = None
    ) -> list[list[RawReceipt]]:
        """The receipts of each block (eth_getBlockReceipts), one batch.

        With ``block_hashes`` the receipts must belong to exactly those blocks (so a reorg
        between fetching a block and its receipts is an error, not a silent mix of branches).
        """
        calls = [("eth_getBlockReceipts", [hex(n)]) for n in numbers]
        hashes: Sequence[str | None] = block_hashes or [None] * len(numbers)
        checks = [self._receipts_check(n, h) for n, h in zip(numbers, hashes, strict=True)]
        results = await self.client.batch(calls, checks=checks) if calls else []
        for number, raw in zip(numbers, results, strict=True):
            if raw is None:
                raise BlockNotFoundError(f"{self.network}: receipts of block {number} not served")
        return cast(list[list[RawReceipt]], results)

    async def get_complete_receipts(self, blocks: Sequence[RawBlock]) -> list[list[RawReceipt]]:
        """The receipts of each block (checked ones, from get_blocks(full_txs=True)), one
        batch, each set proven to hold every log of its block (receiptcheck.py): what lets the
        adapter take a range's Transfer logs from the receipts instead of eth_getLogs."""
        calls = [("eth_getBlockReceipts", [hex(int(block["number"], 16))]) for block in blocks]
        checks = [self._complete_receipts_check(block) for block in blocks]
        results = await self.client.batch(calls, checks=checks) if calls else []
        for block, raw in zip(blocks, results, strict=True):
            if raw is None:
                number = int(block["number"], 16)
                raise BlockNotFoundError(f"{self.network}: receipts of block {number} not served")
        return cast(list[list[RawReceipt]], results)

    async def get_logs(
        self,
        from_block: int,
        to_block: int,
        topics: Sequence[str | list[str] | None],
        addresses: Sequence[str] | None = None,
        max_range: int = 10_000,
    ) -> list[RawLog]:
        """eth_getLogs over ``from_block..to_block`` (inclusive), in chunks of at most
        ``max_range`` blocks; a chunk the endpoint refuses as too large is halved. The one
        range splitter of the gateway (hosted plans cap spans at 100 or 10,000 blocks)."""
        logs: list[RawLog] = []
        start, span = from_block, max(1, max_range)
        while start <= to_block:
            end = min(to_block, start + span - 1)
            query: dict[str, Any] = {
                "fromBlock": hex(start),
                "toBlock": hex(end),
                "topics": list(topics),
            }
            if addresses is not None:
                query["address"] = list(addresses)
            try:
                chunk = await self.client.request(
                    "eth_getLogs", [query], check=self._logs_check(start, end, None)
                )
            except RequestTooLargeError:
                if end == start:
                    raise
                span = max(1, (end - start + 1) // 2)
                log.info("evm_log_range_halved", network=self.network, span=span)
                continue
            logs.extend(chunk)
            start = end + 1
        return logs

    async def get_block_logs(
        self,
        number: int,
        block_hash: str,
        topics: Sequence[str | list[str] | None],
        must_hold: Callable[[list[RawLog]], str | None] | None = None,
    ) -> list[RawLog]:
        """eth_getLogs of one block named by hash (EIP-234). ``must_hold`` names what a complete
        answer cannot lack (or None when it is complete); an answer lacking it fails on that
        endpoint, inside the pool, like any other bad answer."""
        query = {"blockHash": block_hash, "topics": list(topics)}
        shape = self._logs_check(number, number, block_hash)

        def check(raw: Any) -> None:
            shape(raw)
            missing = must_hold(raw) if must_hold is not None else None
            if missing is not None:
                raise IncompleteLogsError(f"{self.network}: logs of block {number} lack {missing}")

        return cast(list[RawLog], await self.client.request("eth_getLogs", [query], check=check))

    async def trace_blocks(self, numbers: Sequence[int]) -> list[list[RawTxTrace]]:
        """callTracer traces of every transaction of each block (debug_traceBlockByNumber)."""
        calls = [("debug_traceBlockByNumber", [hex(n), CALL_TRACER]) for n in numbers]
        checks = [self._traces_check(n) for n in numbers]
        results = await self.client.batch(calls, checks=checks) if calls else []
        return cast(list[list[RawTxTrace]], results)

    async def trace_transactions(self, txids: Sequence[str]) -> list[RawCallFrame]:
        """callTracer trace of each transaction (debug_traceTransaction), one batch; the
        fallback for endpoints that cannot trace whole blocks."""
        calls = [("debug_traceTransaction", [txid, CALL_TRACER]) for txid in txids]
        checks = [self._frame_check(txid) for txid in txids]
        results = await self.client.batch(calls, checks=checks) if calls else []
        return cast(list[RawCallFrame], results)

    async def get_balances(
        self, addresses: Sequence[str], height: int, block_hash: str | None = None
    ) -> list[int]:
        """eth_getBalance of each address at one block, batched (cut to the endpoints' batch
        size by the pool). With ``block_hash`` the block is named by hash (EIP-1898), so the
        answer is that block's state even if another block has taken its height since."""
        block: str | dict[str, str] = {"blockHash": block_hash} if block_hash else hex(height)
        calls = [("eth_getBalance", [address, block]) for address in addresses]
        checks = [self._balance_check(a) for a in addresses]
        results = await self.client.batch(calls, checks=checks) if calls else []
        return [hex_int(raw, "eth_getBalance") for raw in results]

    # --- outgoing: what the planner, the broadcaster and the tracker ask ---------------------

    async def fee_history(self, blocks: int = 5, percentile: float = 50.0) -> dict[str, Any]:
        def check(raw: Any) -> None:
            if not isinstance(raw, dict) or not isinstance(raw.get("baseFeePerGas"), list):
                raise ChainDataError(f"{self.network}: malformed eth_feeHistory answer")
            for value in raw["baseFeePerGas"]:
                hex_int(value, "baseFeePerGas")

        params = [hex(blocks), "latest", [percentile]]
        raw: dict[str, Any] = await self.client.request("eth_feeHistory", params, check=check)
        return raw

    async def transaction_count(self, address: str, block: str | int = "pending") -> int:
        tag = hex(block) if isinstance(block, int) else block
        what = f"{self.network}: eth_getTransactionCount"
        raw = await self.client.request(
            "eth_getTransactionCount", [address, tag], check=_quantity(what)
        )
        return hex_int(raw, what)

    async def estimate_gas(self, call: dict[str, str]) -> int:
        raw = await self.client.request(
            "eth_estimateGas", [call], check=_quantity("eth_estimateGas")
        )
        return hex_int(raw, "eth_estimateGas")

    async def send_raw_transaction(self, raw_hex: str, txid: str) -> SendOutcome:
        """Send signed bytes; resending the same bytes is harmless, so failover may resend.
        What a node says about a transaction it already has is an outcome, not an error."""

        def check(answer: Any) -> None:
            if not isinstance(answer, str) or answer.lower() != txid.lower():
                raise ChainDataError(
                    f"{self.network}: eth_sendRawTransaction answered another hash"
                )

        try:
            await self.client.request("eth_sendRawTransaction", [raw_hex], check=check)
        except RpcError as exc:
            text = str(exc).lower()
            for needle, outcome in _SEND_OUTCOMES:
                if needle in text:
                    return outcome
            raise
        return SendOutcome.ACCEPTED

    async def receipt(self, txid: str) -> RawReceipt | None:
        def check(raw: Any) -> None:
            if raw is not None and (
                not isinstance(raw, dict)
                or str(raw.get("transactionHash", "")).lower() != txid.lower()
            ):
                raise ChainDataError(f"{self.network}: receipt of another transaction than {txid}")

        raw = await self.client.request("eth_getTransactionReceipt", [txid], check=check)
        return None if raw is None else cast(RawReceipt, raw)

    async def transaction(self, txid: str) -> RawTx | None:
        def check(raw: Any) -> None:
            if raw is not None and (
                not isinstance(raw, dict) or str(raw.get("hash", "")).lower() != txid.lower()
            ):
                raise ChainDataError(f"{self.network}: eth_getTransactionByHash of another hash")

        raw = await self.client.request("eth_getTransactionByHash", [txid], check=check)
        return None if raw is None else cast(RawTx, raw)

    # --- checks (run inside the pool, on the endpoint that answered) ------------------------

    def _balance_check(self, address: str) -> Check:
        def check(raw: Any) -> None:
            value = hex_int(raw, f"{self.network}: eth_getBalance of {address}")
            if value >= 2**256:
                raise ChainDataError(f"{self.network}: balance of {address} exceeds 2^256")

        return check

    def _block_check(self, number: int, full_txs: bool) -> Check:
        def check(raw: Any) -> None:
            if raw is not None:  # not served: judged by the caller, see the class docstring
                self._checked_block(number, raw, full_txs)

        return check

    def _checked_block(self, number: int, raw: Any, full_txs: bool) -> RawBlock:
        if not isinstance(raw, dict):
            raise ChainDataError(f"{self.network}: block {number} is not an object")
        if hex_int(raw.get("number"), "block number") != number:
            raise ChainDataError(
                f"{self.network}: asked for block {number}, got {raw.get('number')!r:.20}"
            )
        if not (is_hash32(raw.get("hash")) and is_hash32(raw.get("parentHash"))):
            raise ChainDataError(f"{self.network}: block {number} has malformed hashes")
        bloom = raw.get("logsBloom")
        if not isinstance(bloom, str) or len(bloom) != BLOOM_HEX_LEN:
            raise ChainDataError(f"{self.network}: block {number} has no usable logsBloom")
        if header_hash(raw) != raw["hash"].lower():
            # The hash the watcher links and stores must be the one these fields hash to.
            raise ChainDataError(f"{self.network}: block {number} does not hash to its hash")
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
                _check_tx_shape(tx, self.network, number)
        return cast(RawBlock, raw)

    def _receipts_check(self, number: int, block_hash: str | None) -> Check:
        def check(raw: Any) -> None:
            if raw is not None:
                self._checked_receipts(number, block_hash, raw)

        return check

    def _complete_receipts_check(self, block: RawBlock) -> Check:
        number, block_hash = int(block["number"], 16), block["hash"].lower()

        def check(raw: Any) -> None:
            if raw is not None:
                self._checked_receipts(number, block_hash, raw)
                check_receipts_cover(block, raw, self.network)

        return check

    def _checked_receipts(self, number: int, block_hash: str | None, raw: Any) -> None:
        if not isinstance(raw, list):
            raise ChainDataError(f"{self.network}: receipts of block {number} not a list")
        expected = block_hash
        # Fast paths, no check dropped: a value equal to one already checked (the block's
        # number and hash, the receipt's own hashes) needs no second pattern match.
        number_hex = hex(number)
        for receipt in raw:
            if not isinstance(receipt, dict):
                raise ChainDataError(f"{self.network}: malformed receipt in block {number}")
            at = receipt.get("blockNumber")
            if at != number_hex and hex_int(at, "receipt blockNumber") != number:
                raise ChainDataError(f"{self.network}: receipt from another block than {number}")
            got: Any = receipt.get("blockHash")
            if not (got == expected if expected is not None else is_hash32(got)):
                raise ChainDataError(
                    f"{self.network}: receipts of block {number} belong to another block hash"
                )
            expected = got  # all receipts of one answer must share one block hash
            status = receipt.get("status")
            if status != "0x1" and status != "0x0":
                hex_int(status, "receipt status")
            txid: Any = receipt.get("transactionHash")
            if not is_hash32(txid):
                raise ChainDataError(f"{self.network}: receipt without a transaction hash")
            logs = receipt.get("logs")
            if not isinstance(logs, list):
                raise ChainDataError(f"{self.network}: receipt in block {number} has no logs")
            for entry in logs:
                _check_log_shape(entry, self.network, (number_hex, got, txid))

    def _traces_check(self, number: int) -> Check:
        def check(raw: Any) -> None:
            if not isinstance(raw, list):
                raise ChainDataError(f"{self.network}: traces of block {number} not a list")
            for entry in raw:
                if not isinstance(entry, dict) or not isinstance(entry.get("result"), dict):
                    raise ChainDataError(
                        f"{self.network}: trace in block {number} failed: "
                        f"{entry.get('error') if isinstance(entry, dict) else entry!r:.80}"
                    )

        return check

    def _frame_check(self, txid: str) -> Check:
        def check(frame: Any) -> None:
            if not isinstance(frame, dict) or "type" not in frame:
                raise ChainDataError(f"{self.network}: malformed trace of {txid}")

        return check

    def _logs_check(self, start: int, end: int, block_hash: str | None) -> Check:
        def check(raw: Any) -> None:
            if not isinstance(raw, list):
                raise ChainDataError(f"{self.network}: eth_getLogs answer is not a list")
            for entry in raw:
                _check_log_shape(entry, self.network)
                number = hex_int(entry["blockNumber"], "log blockNumber")
                if not start <= number <= end:
                    raise ChainDataError(
                        f"{self.network}: log from block {number} outside {start}..{end}"
                    )
                if block_hash is not None and entry["blockHash"].lower() != block_hash:
                    raise ChainDataError(f"{self.network}: log of another block than {block_hash}")
                if entry.get("removed"):
                    raise ChainDataError(f"{self.network}: eth_getLogs returned a removed log")

        return check


def _quantity(what: str) -> Check:
    def check(raw: Any) -> None:
        hex_int(raw, what)

    return check


def _check_tx_shape(tx: dict[str, Any], network: str, number: int) -> None:
    """The fields the adapter reads from a transaction object, so that decoding cannot fail."""
    to = tx.get("to")
    if not is_hash32(tx.get("hash")) or not (to is None or isinstance(to, str)):
        raise ChainDataError(f"{network}: malformed transaction in block {number}")
    if not isinstance(tx.get("input"), str):
        raise ChainDataError(f"{network}: transaction in block {number} has no input")
    hex_int(tx.get("value"), "transaction value")
    hex_int(tx.get("transactionIndex"), "transactionIndex")


def _check_log_shape(entry: Any, network: str, receipt: tuple[str, str, str] | None = None) -> None:
    """The fields the adapter reads from a log. ``receipt``: the (checked) block number, block
    hash and transaction hash of the receipt holding it, which its own may simply equal."""
    if not isinstance(entry, dict):
        raise ChainDataError(f"{network}: malformed log entry")
    topics = entry.get("topics")
    if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
        raise ChainDataError(f"{network}: log without a topic list")
    if not isinstance(entry.get("address"), str) or not isinstance(entry.get("data"), str):
        raise ChainDataError(f"{network}: log without address or data")
    at, block_hash, txid = (
        entry.get("blockNumber"),
        entry.get("blockHash"),
        entry.get("transactionHash"),
    )
    # a value equal to the receipt's (already checked) needs no second check
    unchecked = receipt is None or block_hash != receipt[1] or txid != receipt[2]
    if unchecked and (not is_hash32(block_hash) or not is_hash32(txid)):
        raise ChainDataError(f"{network}: log with malformed hashes")
    if receipt is None or at != receipt[0]:
        hex_int(at, "log blockNumber")
    hex_int(entry.get("logIndex"), "log logIndex")


async def head_probe(pool: EndpointPool, endpoint: Endpoint) -> int:
    """One endpoint's head height, for the pool's health tracking."""
    result = await pool.request_on(endpoint, "eth_blockNumber", [])
    return hex_int(result, f"{endpoint.name}: eth_blockNumber")


async def chain_id_probe(pool: EndpointPool, endpoint: Endpoint) -> str:
    """One endpoint's chain id (decimal text), for the pool's identity check."""
    result = await pool.request_on(endpoint, "eth_chainId", [])
    return str(hex_int(result, f"{endpoint.name}: eth_chainId"))
