"""Typed calls to java-tron's HTTP API through the provider pool, checked where data enters.

A node is untrusted: a block must be the number asked for, carry a blockID whose first 8 bytes
are that number, link to its parent by hash, and every transaction must hash (sha256 of
raw_data_hex) to its txID; tx infos must belong to the block asked for.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from typing import TYPE_CHECKING, Any, NamedTuple, NotRequired, TypedDict, cast

from chaingate.chains.base import HttpClient
from chaingate.chains.tron.proto import (
    DecodedContract,
    block_id_of,
    decode_raw_data,
    encode_header_raw,
)
from chaingate.domain import Endpoint

if TYPE_CHECKING:
    from chaingate.providers import EndpointPool
from chaingate.errors import BlockNotFoundError, ChainDataError

BLOCK_RANGE_LIMIT = 100  # java-tron serves at most 100 blocks per getblockbylimitnext
_HASH = re.compile(r"^[0-9a-f]{64}$")


class ContractParameter(TypedDict):
    value: dict[str, Any]
    type_url: str


class Contract(TypedDict):
    type: str
    parameter: ContractParameter


class RawData(TypedDict):
    contract: list[Contract]


class TxRet(TypedDict, total=False):
    contractRet: str


class Transaction(TypedDict):
    txID: str
    raw_data: RawData
    raw_data_hex: str
    ret: NotRequired[list[TxRet]]
    signature: NotRequired[list[str]]


class HeaderRaw(TypedDict):
    number: int
    parentHash: str
    timestamp: NotRequired[int]


class BlockHeader(TypedDict):
    raw_data: HeaderRaw


class Block(TypedDict):
    blockID: str
    block_header: BlockHeader
    transactions: NotRequired[list[Transaction]]


class Log(TypedDict):
    address: str
    topics: list[str]
    data: str


class Receipt(TypedDict, total=False):
    result: str
    energy_usage_total: int
    net_usage: int


class InternalTx(TypedDict, total=False):
    hash: str
    rejected: bool
    caller_address: str
    transferTo_address: str
    callValueInfo: list[dict[str, Any]]


class TxInfo(TypedDict):
    id: str
    blockNumber: int
    receipt: NotRequired[Receipt]
    log: NotRequired[list[Log]]
    result: NotRequired[str]
    internal_transactions: NotRequired[list[InternalTx]]


def block_number(block: Block) -> int:
    return int(block["block_header"]["raw_data"].get("number", 0))


class CheckedBlock(NamedTuple):
    """A block that passed ``checked_block``, with what each of its transactions' raw bytes say
    (the first contract, None for none): decoded once, by the check, for the decoder to read."""

    block: Block
    contracts: list[DecodedContract | None]


def check_block(block: Any, number: int) -> Block:
    """``block`` as a Block when it is well formed and is block ``number``; else raise."""
    return checked_block(block, number).block


def checked_block(block: Any, number: int) -> CheckedBlock:
    """``block`` with its decoded transactions when it is well formed and is block ``number``;
    else raise.

    The blockID must be recomputed from the header (number || sha256(header raw)[8:]) and each
    transaction's txID from its raw bytes, which must decode: whatever the adapter reads later
    is then covered by an id the chain links by.
    """
    if not isinstance(block, dict) or not block:
        raise BlockNotFoundError(f"block {number} not served")
    try:
        typed = cast(Block, block)
        block_id, header = typed["blockID"], typed["block_header"]["raw_data"]
        got, parent = int(header.get("number", 0)), header["parentHash"]
        if not isinstance(block_id, str) or not isinstance(parent, str):
            raise TypeError("blockID and parentHash must be strings")
        computed = block_id_of(got, encode_header_raw(header))
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise ChainDataError(f"block {number}: malformed ({type(exc).__name__})") from exc
    if got != number or not _HASH.match(block_id) or int(block_id[:16], 16) != number:
        raise ChainDataError(f"asked for block {number}, got {got} ({block_id[:16]})")
    if computed != block_id:
        raise ChainDataError(f"block {number}: header does not hash to blockID {block_id}")
    if not _HASH.match(parent):
        raise ChainDataError(f"block {number}: malformed parentHash")
    txs = typed.get("transactions", [])
    if not isinstance(txs, list):
        raise ChainDataError(f"block {number}: transactions is not a list")
    return CheckedBlock(typed, [check_tx(tx) for tx in txs])


def check_tx(tx: Any) -> DecodedContract | None:
    """The txID hashes from raw_data_hex, the bytes decode, and ``ret`` is a list if present;
    the first contract those bytes carry (None for none)."""
    if not isinstance(tx, dict):
        raise ChainDataError("transaction is not an object")
    try:
        raw = bytes.fromhex(tx["raw_data_hex"])
    except (KeyError, ValueError, TypeError) as exc:
        raise ChainDataError(f"transaction without usable raw_data_hex: {exc}") from exc
    if hashlib.sha256(raw).hexdigest() != tx.get("txID"):
        raise ChainDataError(f"txID {tx.get('txID')!r:.70} does not hash from its raw_data")
    contract = decode_raw_data(raw)
    ret = tx.get("ret", [])
    if not isinstance(ret, list) or not all(isinstance(r, dict) for r in ret):
        raise ChainDataError(f"transaction {tx['txID']}: malformed ret")
    return contract


class TronRpc:
    """The java-tron calls the adapter makes. Every check runs inside the pool (``check=``), so
    the endpoint that served a bad answer is failed over and benched; only a block that is not
    served at all is judged after the pool returns (no proof of a lie: it may be behind)."""

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    async def now_block(self) -> Block:
        return cast(Block, await self.http.post("/wallet/getnowblock", check=_head_check))

    async def solid_now_block(self) -> Block:
        return cast(Block, await self.http.post("/walletsolidity/getnowblock", check=_head_check))

    async def block_by_num(self, number: int) -> Block:
        def check(block: Any) -> None:
            if block != {}:
                check_block(block, number)

        block = await self.http.post("/wallet/getblockbynum", {"num": number}, check=check)
        return check_block(block, number)  # {} (not served) raises BlockNotFoundError here

    async def blocks_range(self, start: int, end: int) -> list[CheckedBlock]:
        """Blocks ``start`` up to ``end`` (exclusive), consecutive and linked by parentHash,
        each with its transactions as the check inside the pool decoded them."""
        blocks: list[CheckedBlock] = []
        for lo in range(start, end, BLOCK_RANGE_LIMIT):
            hi = min(end, lo + BLOCK_RANGE_LIMIT)
            check = _RangeCheck(lo, hi)
            reply = await self.http.post(
                "/wallet/getblockbylimitnext", {"startNum": lo, "endNum": hi}, check=check
            )
            served = check.result(reply)
            if len(served) != hi - lo:
                raise BlockNotFoundError(f"blocks {lo}..{hi - 1} not all served")
            blocks.extend(served)
        for prev, (block, _) in itertools.pairwise(blocks):
            if block["block_header"]["raw_data"]["parentHash"] != prev.block["blockID"]:
                raise ChainDataError(f"block {block_number(block)} does not link to its parent")
        return blocks

    async def tx_infos_by_block(self, number: int) -> list[TxInfo]:
        def check(reply: Any) -> None:
            if reply == {}:
                return
            if not isinstance(reply, list):
                raise ChainDataError(f"tx infos of block {number}: not a list")
            for info in reply:
                _check_info(info, number)

        reply = await self.http.post(
            "/wallet/gettransactioninfobyblocknum", {"num": number}, check=check
        )
        return [] if reply == {} else cast(list[TxInfo], reply)


def _head_check(block: Any) -> None:
    check_block(block, _claimed_number(block))


def _sorted_blocks(reply: Any) -> list[Block]:
    served = reply.get("block", []) if isinstance(reply, dict) else None
    if not isinstance(served, list):
        raise ChainDataError("getblockbylimitnext: no block list")
    return sorted(served, key=_claimed_number)


class _RangeCheck:
    """The pool's check of one getblockbylimitnext answer; keeps the blocks it checked (with
    their decoded transactions) for the reply the pool then returns."""

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi
        self._checked: tuple[Any, list[CheckedBlock]] | None = None

    def __call__(self, reply: Any) -> None:
        served = _sorted_blocks(reply)
        if len(served) > self.hi - self.lo:
            raise ChainDataError(f"getblockbylimitnext {self.lo}..{self.hi - 1}: too many blocks")
        self._checked = (reply, [checked_block(b, self.lo + i) for i, b in enumerate(served)])

    def result(self, reply: Any) -> list[CheckedBlock]:
        """The checked blocks of ``reply``, which must be the answer this check passed."""
        if self._checked is None or self._checked[0] is not reply:
            raise ChainDataError(f"getblockbylimitnext {self.lo}..{self.hi - 1}: unchecked reply")
        return self._checked[1]


def _check_info(info: Any, number: int) -> None:
    """A transaction info of block ``number`` with the shapes the decoder reads."""
    if not isinstance(info, dict) or info.get("blockNumber") != number:
        raise ChainDataError(f"tx info does not belong to block {number}")
    if not isinstance(info.get("id"), str) or not _HASH.match(info["id"]):
        raise ChainDataError(f"tx info of block {number} without a transaction id")
    receipt = info.get("receipt", {})
    logs = info.get("log", [])
    internals = info.get("internal_transactions", [])
    if not isinstance(receipt, dict) or not isinstance(logs, list):
        raise ChainDataError(f"tx info {info['id']}: malformed receipt or logs")
    for log in logs:
        topics = log.get("topics") if isinstance(log, dict) else None
        if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
            raise ChainDataError(f"tx info {info['id']}: malformed log")
        if not isinstance(log.get("address"), str) or not isinstance(log.get("data", ""), str):
            raise ChainDataError(f"tx info {info['id']}: log without address or data")
    if not isinstance(internals, list) or not all(isinstance(i, dict) for i in internals):
        raise ChainDataError(f"tx info {info['id']}: malformed internal transactions")


def _claimed_number(block: Any) -> int:
    try:
        return int(block["block_header"]["raw_data"].get("number", 0))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ChainDataError("head block is malformed") from exc


async def head_probe(pool: EndpointPool, endpoint: Endpoint) -> int:
    """One endpoint's head height (/wallet/getnowblock), for the pool's health tracking."""
    block = await pool.post_on(endpoint, "/wallet/getnowblock", {})
    try:
        return int(block["block_header"]["raw_data"]["number"])
    except (KeyError, TypeError, ValueError):
        raise ChainDataError(f"{endpoint.name}: getnowblock answered no block number") from None


async def genesis_probe(pool: EndpointPool, endpoint: Endpoint) -> str:
    """The id of the block one endpoint serves at height 0, for the pool's identity check."""
    block = await pool.post_on(endpoint, "/wallet/getblockbynum", {"num": 0})
    block_id = block.get("blockID") if isinstance(block, dict) else None
    if not isinstance(block_id, str) or not _HASH.match(block_id):
        raise ChainDataError(f"{endpoint.name}: getblockbynum 0 answered no block id")
    return block_id
