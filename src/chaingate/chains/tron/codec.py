"""Pure decoding of java-tron blocks and tx infos into Transfers. No I/O.

What a transaction does (kind, owner, recipient, amount, token id, call data) is read from its
``raw_data_hex``, the bytes its txID is the hash of (decoded by chains/tron/proto.py), never from
the ``raw_data`` JSON beside them. Rules (SPEC section 5): TRX from TransferContract; TRC-20 only
from Transfer logs of a listed contract in a tx whose contractRet and receipt result are both
SUCCESS (a failed call is reported with FAILED_TX, a look-alike contract with UNLISTED_TOKEN; a
missing contractRet is no SUCCESS); TRC-10 matched by token id, never by name; internal
transactions marked rejected are ignored.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache

from chaingate.chains.base import WatchedAddresses
from chaingate.chains.tron.addresses import (
    ADDRESS_PREFIX,
    evm_hex_to_base58,
    from_base58,
    to_base58,
)
from chaingate.chains.tron.proto import DecodedContract, decode_raw_data
from chaingate.chains.tron.rpc import Block, Transaction, TxInfo, block_number
from chaingate.domain import AssetStandard, Network, RejectReason, Transfer
from chaingate.errors import ChainDataError

TRANSFER_TOPIC = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
SEL_TRANSFER = "a9059cbb"


def _contract_ret(tx: Transaction) -> str:
    """The node's verdict on the transaction; "" when it gives none (fails closed)."""
    ret = tx.get("ret") or [{}]
    value = ret[0].get("contractRet", "")
    return value if isinstance(value, str) else ""


_PREFIX = bytes([ADDRESS_PREFIX])


def _raw(value: object) -> bytes:
    """The 21 raw bytes of an address java-tron shows as 41-hex (or base58) in a tx info."""
    text = str(value)
    raw = from_base58(text) if text.startswith("T") else bytes.fromhex(text)
    if not _is_address(raw):
        raise ValueError("not a TRON address")
    return raw


def _raw_word(word_hex: str) -> bytes:
    """The raw address in a 32-byte word of a log topic (hex, the last 20 bytes count)."""
    return _PREFIX + bytes.fromhex(word_hex[-40:])


def _is_address(raw: bytes) -> bool:
    return len(raw) == 21 and raw[0] == ADDRESS_PREFIX


# Every TRC-20 hit names its token contract in base58, and they are the same few contracts in
# every log: cached (bounded, so a hostile block of many contracts costs at most this much).
_contract_base58 = lru_cache(maxsize=1_024)(evm_hex_to_base58)  # a log's 20-byte hex address


def _decoded(tx: Transaction) -> DecodedContract | None:
    try:
        raw = bytes.fromhex(tx["raw_data_hex"])
    except (KeyError, ValueError, TypeError) as exc:
        raise ChainDataError(f"transaction {tx.get('txID')!r:.70} without raw bytes") from exc
    return decode_raw_data(raw)


class _BlockDecoder:
    def __init__(self, network: Network, block: Block, watched: WatchedAddresses) -> None:
        self.network = network
        self.watched = watched
        self.number = block_number(block)
        self.hash = block["blockID"]

    def transfer(
        self,
        tx: Transaction,
        position: str,
        to: str,
        amount: int,
        asset: str | None,
        contract: str | None,
        reason: RejectReason | None = None,
    ) -> Transfer:
        return Transfer(
            network=self.network.name,
            txid=tx["txID"],
            position=position,
            to=to,
            amount=amount,
            asset=asset,
            contract=contract,
            block_number=self.number,
            block_hash=self.hash,
            reject_reason=reason,
        )

    # The watched set holds raw 21-byte addresses: probed with the bytes decoded, and only a
    # hit is rendered as the base58 match key (base58 per transaction would dominate a scan).
    def trx(self, tx: Transaction, contract: DecodedContract) -> Iterator[Transfer]:
        if contract.to in self.watched:
            to = to_base58(contract.to)
            reason = None if _contract_ret(tx) == "SUCCESS" else RejectReason.FAILED_TX
            native = self.network.native_asset.symbol
            yield self.transfer(tx, "native", to, contract.amount, native, None, reason)

    def trc10(self, tx: Transaction, contract: DecodedContract) -> Iterator[Transfer]:
        if contract.to not in self.watched:
            return
        to = to_base58(contract.to)
        token_id = contract.asset_name.decode("utf-8", "replace")
        asset = self.network.asset_by_contract(token_id)
        listed = asset is not None and asset.standard is AssetStandard.TRC10
        reason = None if listed else RejectReason.UNLISTED_TOKEN
        if _contract_ret(tx) != "SUCCESS":
            reason = RejectReason.FAILED_TX
        symbol = asset.symbol if listed and asset else None
        yield self.transfer(tx, "trc10", to, contract.amount, symbol, token_id, reason)

    def trigger(
        self, tx: Transaction, contract: DecodedContract, info: TxInfo | None
    ) -> Iterator[Transfer]:
        if info is None:
            raise ChainDataError(f"no transaction info for contract call {tx['txID']}")
        # Both verdicts, each on its own: an endpoint lying in one of them is not believed.
        receipt_ok = info.get("receipt", {}).get("result") == "SUCCESS"
        if _contract_ret(tx) == "SUCCESS" and receipt_ok:
            yield from self.logs(tx, info)
            yield from self.internal(tx, info)
        else:
            yield from self.failed_call(tx, contract)

    def logs(self, tx: Transaction, info: TxInfo) -> Iterator[Transfer]:
        for index, log in enumerate(info.get("log", [])):
            topics = log.get("topics", [])
            if len(topics) != 3 or topics[0] != TRANSFER_TOPIC:
                continue
            raw = _raw_word(topics[2])
            if raw not in self.watched:
                continue
            to = to_base58(raw)
            contract = _contract_base58(log["address"])
            asset = self.network.asset_by_contract(contract)
            listed = asset is not None and asset.standard is AssetStandard.TRC20
            yield self.transfer(
                tx,
                f"log:{index}",
                to,
                int(log["data"] or "0", 16),
                asset.symbol if listed and asset else None,
                contract,
                None if listed else RejectReason.UNLISTED_TOKEN,
            )

    def internal(self, tx: Transaction, info: TxInfo) -> Iterator[Transfer]:
        """TRX a contract sent on (call value); rejected internal txs moved nothing."""
        for index, itx in enumerate(info.get("internal_transactions", [])):
            if itx.get("rejected") or "transferTo_address" not in itx:
                continue
            raw = _raw(itx["transferTo_address"])
            amount = sum(
                int(v.get("callValue", 0))
                for v in itx.get("callValueInfo", [])
                if "tokenId" not in v
            )
            if amount > 0 and raw in self.watched:
                native = self.network.native_asset.symbol
                yield self.transfer(tx, f"trace:{index}", to_base58(raw), amount, native, None)

    def failed_call(self, tx: Transaction, contract: DecodedContract) -> Iterator[Transfer]:
        data = contract.data
        if len(data) != 68 or data[:4].hex() != SEL_TRANSFER:
            return
        raw = _PREFIX + data[16:36]
        if raw not in self.watched or not _is_address(contract.to):
            return
        to, called = to_base58(raw), to_base58(contract.to)
        asset = self.network.asset_by_contract(called)
        listed = asset is not None and asset.standard is AssetStandard.TRC20
        yield self.transfer(
            tx,
            "call",
            to,
            int.from_bytes(data[36:68], "big"),
            asset.symbol if listed and asset else None,
            called,
            RejectReason.FAILED_TX,
        )


def decode_block(
    network: Network,
    block: Block,
    infos: list[TxInfo],
    watched: WatchedAddresses,
    contracts: Sequence[DecodedContract | None] | None = None,
) -> list[Transfer]:
    """Transfers to ``watched`` in one block, given that block's transaction infos and, when
    ``rpc.checked_block`` has decoded them already, each transaction's contract (else they are
    decoded here from the raw bytes: once either way)."""
    try:
        return _decode_block(network, block, infos, watched, contracts)
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        # Node data the shape checks let through but the decoder cannot read (a log whose data
        # is not hex, say): bad data of this block, to be fetched again, never a crash.
        number = block_number(block) if isinstance(block, dict) else "?"
        raise ChainDataError(f"block {number}: undecodable ({type(exc).__name__})") from exc


def _decode_block(
    network: Network,
    block: Block,
    infos: list[TxInfo],
    watched: WatchedAddresses,
    contracts: Sequence[DecodedContract | None] | None,
) -> list[Transfer]:
    decoder = _BlockDecoder(network, block, watched)
    txs = block.get("transactions", [])
    by_id = {info["id"]: info for info in infos}
    unknown = set(by_id) - {tx["txID"] for tx in txs}
    if unknown:
        raise ChainDataError(f"block {decoder.number}: tx infos for foreign txs {sorted(unknown)}")
    if contracts is None:
        contracts = [_decoded(tx) for tx in txs]
    out: list[Transfer] = []
    # java-tron executes the first contract of a tx only
    for tx, contract in zip(txs, contracts, strict=True):
        if contract is None:
            continue
        if contract.kind == "TransferContract":
            out.extend(decoder.trx(tx, contract))
        elif contract.kind == "TransferAssetContract":
            out.extend(decoder.trc10(tx, contract))
        elif contract.kind == "TriggerSmartContract":
            out.extend(decoder.trigger(tx, contract, by_id.get(tx["txID"])))
    return out


def needs_infos(contracts: Sequence[DecodedContract | None]) -> bool:
    """Whether decoding a block of these contracts needs its tx infos (only calls carry logs)."""
    return any(c is not None and c.kind == "TriggerSmartContract" for c in contracts)
