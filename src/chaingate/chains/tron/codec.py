"""Pure decoding of java-tron blocks and tx infos into Transfers. No I/O.

Rules (SPEC section 5): TRX from TransferContract; TRC-20 only from Transfer logs of a listed
contract in a tx whose contractRet and receipt result are both SUCCESS (a failed call is reported
with FAILED_TX, a look-alike contract with UNLISTED_TOKEN); TRC-10 matched by token id, never by
name; internal transactions marked rejected are ignored.
"""

from __future__ import annotations

from collections.abc import Iterator

from chaingate.chains.base import WatchedAddresses
from chaingate.chains.tron.addresses import evm_hex_to_base58, hex_to_base58
from chaingate.chains.tron.rpc import Block, Transaction, TxInfo, block_number
from chaingate.domain import AssetStandard, Network, RejectReason, Transfer
from chaingate.errors import ChainDataError

TRANSFER_TOPIC = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
SEL_TRANSFER = "a9059cbb"


def _contract_ret(tx: Transaction) -> str:
    ret = tx.get("ret") or [{}]
    return ret[0].get("contractRet", "SUCCESS")


def _address(value: object) -> str:
    text = str(value)
    return text if text.startswith("T") else hex_to_base58(text)


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

    def trx(self, tx: Transaction, value: dict[str, object]) -> Iterator[Transfer]:
        to = _address(value["to_address"])
        if to in self.watched:
            reason = None if _contract_ret(tx) == "SUCCESS" else RejectReason.FAILED_TX
            native = self.network.native_asset.symbol
            yield self.transfer(tx, "native", to, int(str(value["amount"])), native, None, reason)

    def trc10(self, tx: Transaction, value: dict[str, object]) -> Iterator[Transfer]:
        to = _address(value["to_address"])
        if to not in self.watched:
            return
        token_id = bytes.fromhex(str(value["asset_name"])).decode("utf-8", "replace")
        asset = self.network.asset_by_contract(token_id)
        listed = asset is not None and asset.standard is AssetStandard.TRC10
        reason = None if listed else RejectReason.UNLISTED_TOKEN
        if _contract_ret(tx) != "SUCCESS":
            reason = RejectReason.FAILED_TX
        yield self.transfer(
            tx,
            "trc10",
            to,
            int(str(value["amount"])),
            asset.symbol if listed and asset else None,
            token_id,
            reason,
        )

    def trigger(
        self, tx: Transaction, value: dict[str, object], info: TxInfo | None
    ) -> Iterator[Transfer]:
        if info is None:
            raise ChainDataError(f"no transaction info for contract call {tx['txID']}")
        receipt_ok = info.get("receipt", {}).get("result") == "SUCCESS"
        if _contract_ret(tx) == "SUCCESS" and receipt_ok:
            yield from self.logs(tx, info)
            yield from self.internal(tx, info)
        else:
            yield from self.failed_call(tx, value)

    def logs(self, tx: Transaction, info: TxInfo) -> Iterator[Transfer]:
        for index, log in enumerate(info.get("log", [])):
            topics = log.get("topics", [])
            if len(topics) != 3 or topics[0] != TRANSFER_TOPIC:
                continue
            to = evm_hex_to_base58(topics[2])
            if to not in self.watched:
                continue
            contract = evm_hex_to_base58(log["address"])
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
            to = _address(itx["transferTo_address"])
            amount = sum(
                int(v.get("callValue", 0))
                for v in itx.get("callValueInfo", [])
                if "tokenId" not in v
            )
            if amount > 0 and to in self.watched:
                native = self.network.native_asset.symbol
                yield self.transfer(tx, f"trace:{index}", to, amount, native, None)

    def failed_call(self, tx: Transaction, value: dict[str, object]) -> Iterator[Transfer]:
        data = str(value.get("data", ""))
        if len(data) != 136 or not data.startswith(SEL_TRANSFER):
            return
        to = evm_hex_to_base58(data[8:72])
        if to not in self.watched:
            return
        contract = _address(value["contract_address"])
        asset = self.network.asset_by_contract(contract)
        listed = asset is not None and asset.standard is AssetStandard.TRC20
        yield self.transfer(
            tx,
            "call",
            to,
            int(data[72:136], 16),
            asset.symbol if listed and asset else None,
            contract,
            RejectReason.FAILED_TX,
        )


def decode_block(
    network: Network, block: Block, infos: list[TxInfo], watched: WatchedAddresses
) -> list[Transfer]:
    """Transfers to ``watched`` in one block, given that block's transaction infos."""
    decoder = _BlockDecoder(network, block, watched)
    txs = block.get("transactions", [])
    by_id = {info["id"]: info for info in infos}
    unknown = set(by_id) - {tx["txID"] for tx in txs}
    if unknown:
        raise ChainDataError(f"block {decoder.number}: tx infos for foreign txs {sorted(unknown)}")
    out: list[Transfer] = []
    for tx in txs:
        for contract in tx["raw_data"]["contract"][:1]:  # java-tron executes one per tx
            value = contract["parameter"]["value"]
            kind = contract["type"]
            if kind == "TransferContract":
                out.extend(decoder.trx(tx, value))
            elif kind == "TransferAssetContract":
                out.extend(decoder.trc10(tx, value))
            elif kind == "TriggerSmartContract":
                out.extend(decoder.trigger(tx, value, by_id.get(tx["txID"])))
    return out


def needs_infos(block: Block) -> bool:
    """Whether decoding ``block`` needs its tx infos (only contract calls carry logs)."""
    return any(
        c["type"] == "TriggerSmartContract"
        for tx in block.get("transactions", [])
        for c in tx["raw_data"]["contract"]
    )
