"""java-tron JSON shapes of blocks, transactions and TransactionInfo (see tests/data/tron/)."""

from __future__ import annotations

from typing import Any

from chaingate.chains.tron.addresses import hex_to_base58
from chaingate.devnet.tron_node.chain import Block, Tx

_ADDRESS_KEYS = ("owner_address", "to_address", "contract_address")


def _visible_raw(raw: dict[str, Any]) -> dict[str, Any]:
    contracts = []
    for contract in raw["contract"]:
        value = dict(contract["parameter"]["value"])
        for key in _ADDRESS_KEYS:
            if key in value:
                value[key] = hex_to_base58(value[key])
        contracts.append({**contract, "parameter": {**contract["parameter"], "value": value}})
    return {**raw, "contract": contracts}


def tx_json(tx: Tx, visible: bool = False, mined: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if mined and tx.outcome is not None:
        out["ret"] = [{"contractRet": tx.outcome.contract_ret}]
    out["signature"] = list(tx.signature)
    out["txID"] = tx.txid
    out["raw_data"] = _visible_raw(tx.raw_data) if visible else tx.raw_data
    out["raw_data_hex"] = tx.raw_data_hex
    if visible:
        out["visible"] = True
    return out


def block_json(block: Block, visible: bool = False) -> dict[str, Any]:
    header = dict(block.header)
    if header["timestamp"] == 0:
        del header["timestamp"]  # proto3 JSON leaves zero fields out, as java-tron's genesis
    if visible:
        header["witness_address"] = hex_to_base58(header["witness_address"])
    out: dict[str, Any] = {
        "blockID": block.block_id,
        "block_header": {"raw_data": header, "witness_signature": block.witness_signature},
    }
    if block.txs:  # java-tron omits an empty transactions list
        out["transactions"] = [tx_json(tx, visible) for tx in block.txs]
    return out


def _receipt(tx: Tx) -> dict[str, Any]:
    assert tx.outcome is not None
    bill = tx.outcome.bill
    # proto3 JSON leaves zero fields out: a transfer on free bandwidth shows only net_usage,
    # one that burned TRX only net_fee (mainnet's shapes, tests/data/tron/)
    receipt: dict[str, Any] = {}
    if tx.kind == "TriggerSmartContract":
        receipt["energy_fee"] = bill.energy_fee
        receipt["energy_usage_total"] = bill.energy_used
    receipt["net_usage"] = bill.net_usage
    receipt["net_fee"] = bill.net_fee
    receipt = {k: v for k, v in receipt.items() if v}
    if tx.kind == "TriggerSmartContract":
        receipt["result"] = tx.outcome.contract_ret
    return receipt


def tx_info_json(tx: Tx, block: Block) -> dict[str, Any]:
    outcome = tx.outcome
    assert outcome is not None  # only mined txs have info
    info: dict[str, Any] = {"id": tx.txid}
    if outcome.bill.fee:
        info["fee"] = outcome.bill.fee
    info |= {
        "blockNumber": block.number,
        "blockTimeStamp": block.timestamp,
        "contractResult": [outcome.contract_result],
    }
    if tx.kind == "TriggerSmartContract":
        info["contract_address"] = tx.value["contract_address"]
    info["receipt"] = _receipt(tx)
    if outcome.logs:
        info["log"] = outcome.logs
    if outcome.contract_ret != "SUCCESS":
        info["result"] = "FAILED"
        info["resMessage"] = outcome.message.encode().hex()
    return info
