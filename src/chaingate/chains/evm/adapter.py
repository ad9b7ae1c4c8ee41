"""The EVM ChainAdapter: turns a block range into the Transfers that reach watched addresses.

Per scan: the blocks with full transactions (one batch) and one eth_getLogs over the range with
topic0 = Transfer and NO address filter (an unlisted token sent to us must be seen, to be
rejected loudly), fetched concurrently. Receipts are fetched only for the few blocks holding a
native or token-call candidate or a Transfer log to us (a log's position is its place among its
transaction's logs, which only the receipt tells), traces only when the network has tracing.
Where (nearly) every block needs its receipts (``LogSource``), the range is read as blocks then
every block's receipts, and the Transfer logs are taken from the receipts, proven complete
against the header's logsBloom (receiptcheck.py), with no eth_getLogs. Work per transaction is
a dictionary lookup or two; the watched set may hold millions of keys and is only probed.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Awaitable, Collection, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TypeVar

import structlog

from chaingate.aio import task_group
from chaingate.chains.base import DerivedAddress, RpcClient, WatchedAddresses
from chaingate.chains.evm import codec, history
from chaingate.chains.evm.addresses import EvmAddresses, address_bytes
from chaingate.chains.evm.hexdata import hex_int
from chaingate.chains.evm.logcheck import complete_logs, transfer_masks
from chaingate.chains.evm.rpc import (
    EvmRpc,
    RawBlock,
    RawCallFrame,
    RawLog,
    RawReceipt,
    RawTx,
    RawTxTrace,
)
from chaingate.domain import (
    Asset,
    AssetStandard,
    BlockRef,
    ChainHead,
    Network,
    ScanResult,
    Transfer,
)
from chaingate.domain.models import RejectReason
from chaingate.errors import ChainDataError, ConfigError, RpcError

log = structlog.get_logger(__name__)

T = TypeVar("T")
U = TypeVar("U")
METHOD_NOT_FOUND = -32601  # JSON-RPC: the endpoint does not serve this method
_ADDRESS_KEY = re.compile(r"0x[0-9a-f]{40}")  # Transfer.to / deposit_addresses.match_key


class LogSource:
    """Where a range's Transfer logs come from: eth_getLogs, or the receipts of every block.

    Judged on the ranges just scanned: when the blocks needing receipts (a candidate or a
    Transfer to us) were at least ``threshold`` of a range, the next ranges read every block's
    receipts and no eth_getLogs (a dense chain: the logs would be served and decoded twice);
    below it, eth_getLogs and the few candidate blocks' receipts (mainnet-like: a deposit every
    ten blocks of 150 transactions). Both give the same Transfers.
    """

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold
        self.share = 0.0  # of the last range's blocks, those that needed their receipts

    @property
    def receipts_only(self) -> bool:
        return self.share >= self.threshold

    def observe(self, needing: int, blocks: int) -> None:
        self.share = needing / blocks if blocks else 0.0


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A transaction to check against its receipt: native value or a token call to us."""

    tx: RawTx
    block: BlockRef
    to: str
    amount: int
    token: Asset | None  # None: the transaction's own ETH value


@dataclass(frozen=True, slots=True)
class _TokenHit:
    """A Transfer log to a watched address, waiting for its receipt to know its position."""

    event: codec.TokenLog
    raw: RawLog
    block: BlockRef
    tx_index: int


class EvmAdapter:
    """ChainAdapter for one EVM network over an RpcClient (the network's EndpointPool)."""

    def __init__(self, network: Network, rpc: RpcClient) -> None:
        self.network = network
        self.addresses = EvmAddresses(network)
        self.rpc = EvmRpc(rpc, network.name)
        self._client = rpc
        try:
            self._native = network.native_asset.symbol
        except LookupError as exc:
            raise ConfigError(f"EVM network {network.name} lists no native asset") from exc
        self._tokens: dict[str, Asset] = {
            asset.contract.lower(): asset
            for asset in network.assets
            if asset.contract is not None and asset.standard is AssetStandard.ERC20
        }
        # The same tokens by raw address: a transaction's ``to`` is decoded once per lookup.
        self._tokens_raw: dict[bytes, Asset] = {
            raw: asset for key, asset in self._tokens.items() if (raw := address_bytes(key))
        }
        self._transfer_masks = transfer_masks(list(self._tokens), codec.TRANSFER_TOPIC)
        self._max_log_range = min((e.max_log_range for e in network.endpoints), default=10_000)
        self._block_tracing = True  # cleared when an endpoint refuses debug_traceBlockByNumber
        self.log_source = LogSource()

    async def head(self) -> ChainHead:
        return ChainHead(number=await self.rpc.block_number())

    async def block_ref(self, number: int) -> BlockRef:
        (block,) = await self.rpc.get_blocks([number], full_txs=False)
        return _ref(block)

    def pinned(self, avoid: str | None = None) -> AbstractAsyncContextManager[str]:
        return self._client.pinned(avoid)

    mempool_complete = True  # no mempool view: nothing to be incomplete

    async def pending(self, watched: WatchedAddresses) -> list[Transfer]:
        return []  # EVM deposits are taken from blocks only

    async def native_balances(
        self, addresses: Sequence[str], height: int, block_hash: str | None = None
    ) -> dict[str, int]:
        """BalanceReader: ETH (the native coin) of each address at block ``height``."""
        wanted = list(dict.fromkeys(addresses))
        for address in wanted:
            if not _ADDRESS_KEY.fullmatch(address):
                raise ValueError(f"not a lowercase 0x address key: {address!r:.50}")
        values = await self.rpc.get_balances(wanted, height, block_hash)
        return dict(zip(wanted, values, strict=True))

    async def addresses_with_history(self, addresses: Sequence[DerivedAddress]) -> list[int]:
        """AddressHistory: nonce, ETH or listed token balance (chains/evm/history.py)."""
        return await history.addresses_with_history(self.network, self.rpc.client, addresses)

    async def aclose(self) -> None:
        return None  # the pool belongs to whoever built it

    async def scan(self, start: int, end: int, watched: WatchedAddresses) -> ScanResult:
        if end < start:
            raise ValueError(f"empty scan range {start}..{end}")
        if self.log_source.receipts_only:
            return await self._scan_receipts(start, end, watched)
        numbers = list(range(start, end + 1))
        blocks, logs = await _both(
            self.rpc.get_blocks(numbers, full_txs=True),
            self.rpc.get_logs(start, end, [codec.TRANSFER_TOPIC], max_range=self._max_log_range),
        )
        refs = _linked_refs(blocks, self.network.name)
        logs = await complete_logs(
            self.rpc, blocks, logs, self._transfer_masks, codec.TRANSFER_TOPIC
        )
        by_number = {ref.number: ref for ref in refs}
        hits = self._token_logs(logs, watched, by_number)
        candidates = [
            c
            for block, ref in zip(blocks, refs, strict=True)
            for c in self._candidates(block, ref, watched)
        ]
        # A token deposit's position is its log's place among its transaction's own logs
        # (stable when the transaction is mined again elsewhere), which only the receipt tells.
        receipts_needed = sorted(
            {c.block.number for c in candidates} | {h.block.number for h in hits}
        )
        self.log_source.observe(len(receipts_needed), len(numbers))
        receipts, traces = await _both(
            self._receipts(receipts_needed, by_number),
            self._internal(blocks, refs, watched),
        )
        transfers = [
            self._token_transfer(
                hit,
                receipts[hit.block.number],
                len(blocks[hit.block.number - start]["transactions"]),
            )
            for hit in hits
        ]
        return self._result(refs, transfers, candidates, receipts, blocks, traces)

    async def _scan_receipts(self, start: int, end: int, watched: WatchedAddresses) -> ScanResult:
        """The dense path (``LogSource``): blocks, then every block's receipts (proven to hold
        every log of the block), the Transfer logs taken from those; no eth_getLogs."""
        numbers = list(range(start, end + 1))
        blocks = await self.rpc.get_blocks(numbers, full_txs=True)
        refs = _linked_refs(blocks, self.network.name)
        fetched, traces = await _both(
            self.rpc.get_complete_receipts(blocks), self._internal(blocks, refs, watched)
        )
        receipts = dict(zip(numbers, fetched, strict=True))
        transfers = [
            transfer
            for ref, block_receipts in zip(refs, fetched, strict=True)
            for transfer in self._receipt_transfers(ref, block_receipts, watched)
        ]
        candidates = [
            c
            for block, ref in zip(blocks, refs, strict=True)
            for c in self._candidates(block, ref, watched)
        ]
        needing = {c.block.number for c in candidates} | {t.block_number for t in transfers}
        self.log_source.observe(len(needing), len(numbers))
        return self._result(refs, transfers, candidates, receipts, blocks, traces)

    def _result(
        self,
        refs: list[BlockRef],
        transfers: list[Transfer],
        candidates: list[_Candidate],
        receipts: dict[int, list[RawReceipt]],
        blocks: list[RawBlock],
        traces: list[Transfer],
    ) -> ScanResult:
        # A token call whose Transfer log to us was found (and checked against its receipt)
        # moved tokens: its receipt need not be searched for the event again.
        logged = {(t.txid, t.contract, t.to) for t in transfers}
        transfers.extend(self._resolve(candidates, receipts, blocks, refs[0].number, logged))
        transfers.extend(traces)
        return ScanResult(blocks=tuple(refs), transfers=tuple(transfers))

    # --- token events ---------------------------------------------------------------------

    def _token_logs(
        self, logs: Sequence[RawLog], watched: WatchedAddresses, by_number: dict[int, BlockRef]
    ) -> list[_TokenHit]:
        found: list[_TokenHit] = []
        # Every log, not only ours, must come from the blocks just fetched: a log of another
        # branch means the chain moved between the two calls and the scan must be redone.
        fast = {hex(ref.number): ref.hash for ref in by_number.values()}
        for raw in logs:
            if fast.get(raw["blockNumber"]) != raw["blockHash"]:
                self._check_log_block(raw, by_number)
            if codec.topic_recipient(raw) not in watched:
                continue
            event = codec.decode_transfer_log(raw)
            if event is None:
                continue
            block = by_number[hex_int(raw["blockNumber"], "log blockNumber")]
            tx_index = hex_int(raw["transactionIndex"], "log transactionIndex")
            found.append(_TokenHit(event, raw, block, tx_index))
        return found

    def _token_transfer(
        self, hit: _TokenHit, receipts: list[RawReceipt], tx_count: int
    ) -> Transfer:
        receipt = _receipt_at(hit.event.txid, hit.tx_index, receipts, tx_count)
        position = _log_position(receipt, hit.raw, hit.event.log_index)
        return self._log_transfer(hit.event, hit.block, position)

    def _receipt_transfers(
        self, ref: BlockRef, receipts: list[RawReceipt], watched: WatchedAddresses
    ) -> Iterable[Transfer]:
        """Transfers to us among the logs of a block's receipts (checked complete, in order,
        a failed transaction's without logs: receiptcheck.py)."""
        for receipt in receipts:
            for position, raw in enumerate(receipt["logs"]):
                key = codec.topic_recipient(raw)
                if key is None or key not in watched:
                    continue
                event = codec.decode_transfer_log(raw)
                if event is not None:
                    yield self._log_transfer(event, ref, position)

    def _log_transfer(self, event: codec.TokenLog, block: BlockRef, position: int) -> Transfer:
        asset = self._tokens.get(event.contract)
        return Transfer(
            network=self.network.name,
            txid=event.txid,
            position=f"log:{position}",
            to=event.to,
            amount=event.amount,
            asset=asset.symbol if asset else None,
            contract=event.contract,
            block_number=block.number,
            block_hash=block.hash,
            reject_reason=None if asset else RejectReason.UNLISTED_TOKEN,
        )

    def _check_log_block(self, raw: RawLog, by_number: dict[int, BlockRef]) -> None:
        """Slow path of the log/block match, for answers not in canonical lowercase hex."""
        block = by_number[hex_int(raw["blockNumber"], "log blockNumber")]
        if str(raw["blockHash"]).lower() != block.hash:
            raise ChainDataError(
                f"{self.network.name}: log of block {block.number} from another branch"
            )

    # --- native value and token calls (need receipts) -------------------------------------

    def _candidates(
        self, block: RawBlock, ref: BlockRef, watched: WatchedAddresses
    ) -> Iterable[_Candidate]:
        tokens, fromhex = self._tokens_raw, bytes.fromhex
        for tx in block["transactions"]:
            to = tx["to"]
            # address_bytes inlined: this runs for every transaction of every block, and a
            # function call would cost more than the lookup itself.
            if to is None or len(to) != 42 or to[0] != "0" or to[1] not in "xX":
                continue
            try:
                raw = fromhex(to[2:])
            except ValueError:
                continue
            if raw in watched:
                value = codec.native_value(tx)
                if value > 0:
                    yield _Candidate(tx, ref, to.lower(), value, None)
            elif (token := tokens.get(raw)) is not None:
                call = codec.decode_token_call(tx)
                if call is not None and address_bytes(call.to) in watched:
                    yield _Candidate(tx, ref, call.to, call.amount, token)

    async def _receipts(
        self, numbers: list[int], by_number: dict[int, BlockRef]
    ) -> dict[int, list[RawReceipt]]:
        if not numbers:
            return {}
        hashes = [by_number[n].hash for n in numbers]
        fetched = await self.rpc.get_block_receipts(numbers, hashes)
        return dict(zip(numbers, fetched, strict=True))

    def _resolve(
        self,
        candidates: list[_Candidate],
        receipts: dict[int, list[RawReceipt]],
        blocks: list[RawBlock],
        start: int,
        logged: Collection[tuple[str, str | None, str]],
    ) -> Iterable[Transfer]:
        for cand in candidates:
            block_receipts = receipts[cand.block.number]
            index = hex_int(cand.tx["transactionIndex"], "transactionIndex")
            block_txs = blocks[cand.block.number - start]["transactions"]
            receipt = _receipt_of(cand.tx, index, block_receipts, len(block_txs))
            failed = hex_int(receipt.get("status"), "receipt status") != 1
            if cand.token is None:
                reason = RejectReason.FAILED_TX if failed else None
                yield self._transfer(cand, "native", self._native, None, reason)
            elif failed:
                yield self._call_transfer(cand, index, RejectReason.FAILED_TX)
            elif (
                cand.tx["hash"].lower(),
                cand.token.contract,
                cand.to,
            ) not in logged and not _has_transfer_event(receipt, cand.token, cand.to):
                # transfer() "succeeded" but moved nothing: a token returning false.
                yield self._call_transfer(cand, index, RejectReason.NO_TRANSFER_EVENT)

    def _call_transfer(self, cand: _Candidate, index: int, reason: RejectReason) -> Transfer:
        token = cand.token
        assert token is not None
        # One top-level call per transaction: "call" is stable wherever it is mined.
        return self._transfer(cand, "call", token.symbol, token.contract, reason)

    def _transfer(
        self,
        cand: _Candidate,
        position: str,
        asset: str,
        contract: str | None,
        reason: RejectReason | None,
    ) -> Transfer:
        return Transfer(
            network=self.network.name,
            txid=cand.tx["hash"].lower(),
            position=position,
            to=cand.to,
            amount=cand.amount,
            asset=asset,
            contract=contract,
            block_number=cand.block.number,
            block_hash=cand.block.hash,
            reject_reason=reason,
        )

    # --- internal ETH transfers (traces) ---------------------------------------------------

    async def _internal(
        self, blocks: list[RawBlock], refs: list[BlockRef], watched: WatchedAddresses
    ) -> list[Transfer]:
        if not self.network.tracing:
            return []
        found: list[Transfer] = []
        per_block = await self._traces(blocks, refs)
        for block, ref, frames in zip(blocks, refs, per_block, strict=True):
            for tx, top in zip(block["transactions"], frames, strict=True):
                for internal in codec.internal_transfers(top, watched):
                    found.append(
                        Transfer(
                            network=self.network.name,
                            txid=tx["hash"].lower(),
                            position=f"trace:{internal.path}",
                            to=internal.to,
                            amount=internal.amount,
                            asset=self._native,
                            block_number=ref.number,
                            block_hash=ref.hash,
                        )
                    )
        return found

    async def _traces(
        self, blocks: list[RawBlock], refs: list[BlockRef]
    ) -> list[list[RawCallFrame]]:
        """The top call frame of every transaction of each block, in transaction order."""
        if self._block_tracing:
            try:
                traced = await self.rpc.trace_blocks([ref.number for ref in refs])
            except RpcError as exc:
                if exc.rpc_code != METHOD_NOT_FOUND:
                    raise
                log.warning("evm_block_tracing_unsupported", network=self.network.name)
                self._block_tracing = False
            else:
                return [
                    _aligned_traces(block, entries, self.network.name)
                    for block, entries in zip(blocks, traced, strict=True)
                ]
        return await self._traces_per_tx(blocks)

    async def _traces_per_tx(self, blocks: list[RawBlock]) -> list[list[RawCallFrame]]:
        # Only code can move ETH internally: plain value transfers (empty input) get a stub.
        wanted = [tx["hash"] for b in blocks for tx in b["transactions"] if tx["input"] != "0x"]
        frames = dict(zip(wanted, await self.rpc.trace_transactions(wanted), strict=True))
        empty: RawCallFrame = {"type": "CALL"}
        return [[frames.get(tx["hash"], empty) for tx in b["transactions"]] for b in blocks]


def _ref(block: RawBlock) -> BlockRef:
    return BlockRef(
        number=int(block["number"], 16),
        hash=block["hash"].lower(),
        parent_hash=block["parentHash"].lower(),
    )


def _linked_refs(blocks: list[RawBlock], network: str) -> list[BlockRef]:
    """BlockRefs of consecutive blocks, checked to form one chain (no branch mix)."""
    refs = [_ref(block) for block in blocks]
    for parent, child in itertools.pairwise(refs):
        if child.parent_hash != parent.hash:
            raise ChainDataError(
                f"{network}: block {child.number} does not link to block {parent.number}"
            )
    return refs


def _receipt_of(tx: RawTx, index: int, receipts: list[RawReceipt], tx_count: int) -> RawReceipt:
    return _receipt_at(tx["hash"], index, receipts, tx_count)


def _receipt_at(txid: str, index: int, receipts: list[RawReceipt], tx_count: int) -> RawReceipt:
    if len(receipts) != tx_count or not 0 <= index < tx_count:
        raise ChainDataError(f"receipts do not match the transactions of the block of {txid}")
    receipt = receipts[index]
    if receipt["transactionHash"].lower() != txid.lower():
        raise ChainDataError(f"receipt {index} is not that of transaction {txid}")
    return receipt


def _log_position(receipt: RawReceipt, raw: RawLog, log_index: int) -> int:
    """Where the log ``raw`` (block-global ``log_index``) sits among its transaction's logs;
    ChainDataError unless the receipt holds that very log."""
    if hex_int(receipt.get("status"), "receipt status") != 1:
        raise ChainDataError(f"a log of failed transaction {receipt['transactionHash']}")
    for position, entry in enumerate(receipt["logs"]):
        if hex_int(entry["logIndex"], "receipt logIndex") != log_index:
            continue
        same = (
            entry["address"].lower() == raw["address"].lower()
            and [t.lower() for t in entry["topics"]] == [t.lower() for t in raw["topics"]]
            and entry["data"].lower() == raw["data"].lower()
        )
        if not same:
            raise ChainDataError(f"log {log_index} differs between eth_getLogs and its receipt")
        return position
    raise ChainDataError(f"log {log_index} is missing from the receipt of its transaction")


def _has_transfer_event(receipt: RawReceipt, token: Asset, to: str) -> bool:
    for raw in receipt["logs"]:
        event = codec.decode_transfer_log(raw)
        if event is not None and event.contract == token.contract and event.to == to:
            return True
    return False


def _aligned_traces(block: RawBlock, entries: list[RawTxTrace], network: str) -> list[RawCallFrame]:
    txs = block["transactions"]
    if len(entries) != len(txs):
        raise ChainDataError(f"{network}: traces do not match the transactions of a block")
    for tx, entry in zip(txs, entries, strict=True):
        traced = entry.get("txHash")
        if traced is not None and traced.lower() != tx["hash"].lower():
            raise ChainDataError(f"{network}: trace of {traced} where {tx['hash']} was expected")
    return [entry["result"] for entry in entries]


async def _both(first: Awaitable[T], second: Awaitable[U]) -> tuple[T, U]:
    """Await two calls concurrently; if one fails the other is cancelled and the failure is
    raised as itself (not wrapped in an ExceptionGroup, so callers can classify it by type)."""
    async with task_group() as group:
        a = group.create_task(_awaited(first))
        b = group.create_task(_awaited(second))
    return a.result(), b.result()


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable
