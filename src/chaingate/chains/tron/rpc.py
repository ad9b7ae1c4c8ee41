"""Typed calls to java-tron's HTTP API through the provider pool, checked where data enters.

A node is untrusted: a block must be the number asked for, carry a blockID whose first 8 bytes
are that number, link to its parent by hash, and every transaction must hash (sha256 of
raw_data_hex) to its txID; tx infos must belong to the block asked for.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, cast

from chaingate.chains.base import HttpClient
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


def check_block(block: Any, number: int) -> Block:
    """``block`` as a Block when it is well formed and is block ``number``; else raise."""
    if not isinstance(block, dict) or not block:
        raise BlockNotFoundError(f"block {number} not served")
    try:
        typed = cast(Block, block)
        block_id, got = typed["blockID"], block_number(typed)
        parent = typed["block_header"]["raw_data"]["parentHash"]
    except (KeyError, TypeError) as exc:
        raise ChainDataError(f"block {number}: malformed ({exc})") from exc
    if got != number or not _HASH.match(block_id) or int(block_id[:16], 16) != number:
        raise ChainDataError(f"asked for block {number}, got {got} ({block_id[:16]})")
    if not _HASH.match(parent):
        raise ChainDataError(f"block {number}: malformed parentHash")
    for tx in typed.get("transactions", []):
        check_tx(tx)
    return typed


def check_tx(tx: Transaction) -> None:
    try:
        computed = hashlib.sha256(bytes.fromhex(tx["raw_data_hex"])).hexdigest()
    except (KeyError, ValueError, TypeError) as exc:
        raise ChainDataError(f"transaction without usable raw_data_hex: {exc}") from exc
    if computed != tx.get("txID"):
        raise ChainDataError(f"txID {tx.get('txID')} does not hash from its raw_data")


class TronRpc:
    def __init__(self, http: HttpClient) -> None:
        self.http = http

    async def now_block(self) -> Block:
        block = await self.http.post("/wallet/getnowblock")
        return check_block(block, _claimed_number(block))

    async def solid_now_block(self) -> Block:
        block = await self.http.post("/walletsolidity/getnowblock")
        return check_block(block, _claimed_number(block))

    async def block_by_num(self, number: int) -> Block:
        return check_block(await self.http.post("/wallet/getblockbynum", {"num": number}), number)

    async def blocks_range(self, start: int, end: int) -> list[Block]:
        """Blocks ``start`` up to ``end`` (exclusive), consecutive and linked by parentHash."""
        blocks: list[Block] = []
        for lo in range(start, end, BLOCK_RANGE_LIMIT):
            hi = min(end, lo + BLOCK_RANGE_LIMIT)
            reply = await self.http.post(
                "/wallet/getblockbylimitnext", {"startNum": lo, "endNum": hi}
            )
            served = reply.get("block", []) if isinstance(reply, dict) else None
            if not isinstance(served, list) or len(served) != hi - lo:
                raise BlockNotFoundError(f"blocks {lo}..{hi - 1} not all served")
            served.sort(key=_claimed_number)
            blocks.extend(check_block(b, lo + i) for i, b in enumerate(served))
        for prev, block in itertools.pairwise(blocks):
            if block["block_header"]["raw_data"]["parentHash"] != prev["blockID"]:
                raise ChainDataError(f"block {block_number(block)} does not link to its parent")
        return blocks

    async def tx_infos_by_block(self, number: int) -> list[TxInfo]:
        reply = await self.http.post("/wallet/gettransactioninfobyblocknum", {"num": number})
        if reply == {}:
            return []
        if not isinstance(reply, list):
            raise ChainDataError(f"tx infos of block {number}: not a list")
        for info in reply:
            if not isinstance(info, dict) or info.get("blockNumber") != number:
                raise ChainDataError(f"tx info does not belong to block {number}")
        return cast(list[TxInfo], reply)


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
