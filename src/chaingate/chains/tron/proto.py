"""Protobuf wire format of the java-tron messages whose hashes matter, both ways.

Only what ids and signatures are computed over: ``Transaction.raw`` (txID = sha256 of it) with the
three contract types chaingate moves value with, and ``BlockHeader.raw`` (blockID = 8-byte block
number || sha256(raw)[8:]). Field numbers follow java-tron's core/Tron.proto and
core/contract/*.proto; proto3 rules apply (default values are not written, fields in number
order), which is what makes the bytes equal java-tron's. Checked in the tests against real mainnet
raw_data_hex/txID pairs and against tronpy's own protobuf-based txID.

The writer serves the devnet node (which builds these bytes) and the block-id check; the reader
is how the adapter learns what a transaction does: from the bytes its txID is the hash of, never
from the ``raw_data`` JSON a node renders beside them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chaingate.chains.tron.addresses import any_to_raw
from chaingate.errors import ChainDataError

# Transaction.Contract.ContractType values (core/Tron.proto)
CONTRACT_TYPES = {
    "TransferContract": 1,
    "TransferAssetContract": 2,
    "TriggerSmartContract": 31,
}


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 negatives are ten-byte two's complement varints
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _int_field(number: int, value: int) -> bytes:
    return b"" if value == 0 else _varint(number << 3) + _varint(value)


def _bytes_field(number: int, value: bytes) -> bytes:
    return b"" if not value else _varint((number << 3) | 2) + _varint(len(value)) + value


def _addr(value: Any) -> bytes:
    return any_to_raw(str(value)) if value else b""


def _contract_value(kind: str, value: Mapping[str, Any]) -> bytes:
    if kind == "TransferContract":
        return (
            _bytes_field(1, _addr(value.get("owner_address")))
            + _bytes_field(2, _addr(value.get("to_address")))
            + _int_field(3, int(value.get("amount", 0)))
        )
    if kind == "TransferAssetContract":
        return (
            _bytes_field(1, bytes.fromhex(value.get("asset_name", "")))
            + _bytes_field(2, _addr(value.get("owner_address")))
            + _bytes_field(3, _addr(value.get("to_address")))
            + _int_field(4, int(value.get("amount", 0)))
        )
    if kind == "TriggerSmartContract":
        return (
            _bytes_field(1, _addr(value.get("owner_address")))
            + _bytes_field(2, _addr(value.get("contract_address")))
            + _int_field(3, int(value.get("call_value", 0)))
            + _bytes_field(4, bytes.fromhex(value.get("data", "")))
            + _int_field(5, int(value.get("call_token_value", 0)))
            + _int_field(6, int(value.get("token_id", 0)))
        )
    raise ValueError(f"unsupported contract type: {kind}")


def _contract(contract: Mapping[str, Any]) -> bytes:
    kind = contract["type"]
    if kind not in CONTRACT_TYPES:
        raise ValueError(f"unsupported contract type: {kind}")
    parameter = contract["parameter"]
    any_msg = _bytes_field(1, parameter["type_url"].encode()) + _bytes_field(
        2, _contract_value(kind, parameter["value"])
    )
    return (
        _int_field(1, CONTRACT_TYPES[kind])
        + _bytes_field(2, any_msg)
        + _int_field(5, int(contract.get("Permission_id", 0)))
    )


def encode_raw_data(raw: Mapping[str, Any]) -> bytes:
    """Serialized ``Transaction.raw`` of a JSON raw_data (addresses in hex or base58)."""
    out = _bytes_field(1, bytes.fromhex(raw.get("ref_block_bytes") or ""))
    out += _int_field(3, int(raw.get("ref_block_num", 0)))
    out += _bytes_field(4, bytes.fromhex(raw.get("ref_block_hash") or ""))
    out += _int_field(8, int(raw.get("expiration", 0)))
    out += _bytes_field(10, bytes.fromhex(raw.get("data", "")))
    for contract in raw["contract"]:
        out += _bytes_field(11, _contract(contract))
    out += _int_field(14, int(raw.get("timestamp", 0)))
    out += _int_field(18, int(raw.get("fee_limit", 0)))
    return out


def txid_of(raw_bytes: bytes) -> str:
    return hashlib.sha256(raw_bytes).hexdigest()


def encode_header_raw(header: Mapping[str, Any]) -> bytes:
    """Serialized ``BlockHeader.raw`` of a JSON block_header.raw_data."""
    return (
        _int_field(1, int(header.get("timestamp", 0)))
        + _bytes_field(2, bytes.fromhex(header.get("txTrieRoot", "")))
        + _bytes_field(3, bytes.fromhex(header.get("parentHash", "")))
        + _int_field(7, int(header.get("number", 0)))
        + _int_field(8, int(header.get("witness_id", 0)))
        + _bytes_field(9, bytes.fromhex(header.get("witness_address", "")))
        + _int_field(10, int(header.get("version", 0)))
        + _bytes_field(11, bytes.fromhex(header.get("accountStateRoot", "")))
    )


def block_id_of(number: int, header_raw: bytes) -> str:
    return number.to_bytes(8, "big").hex() + hashlib.sha256(header_raw).hexdigest()[16:]


# --- reading ---------------------------------------------------------------------------------
_NAMES = {number: name for name, number in CONTRACT_TYPES.items()}
Fields = dict[int, list[int | bytes]]


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ChainDataError("protobuf varint runs past its message")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def parse_message(data: bytes) -> Fields:
    """The fields of one message: number -> values in wire order (varints and fixed as int,
    length-delimited as bytes). Anything malformed is a ChainDataError."""
    # Runs for every transaction of every block scanned: one-byte keys and lengths and the
    # varint loop are read inline, no call per field.
    fields: Fields = {}
    pos, end = 0, len(data)
    while pos < end:
        key = data[pos]
        pos += 1
        if key > 0x7F:
            key, pos = _read_varint(data, pos - 1)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ChainDataError("protobuf field number 0")
        value: int | bytes
        if wire == 2:
            if pos < end and data[pos] < 0x80:
                size = data[pos]
                pos += 1
            else:
                size, pos = _read_varint(data, pos)
            stop = pos + size
            if stop > end:
                raise ChainDataError("protobuf field runs past its message")
            value, pos = data[pos:stop], stop
        elif wire == 0:
            value = shift = 0
            while True:
                if pos >= end or shift > 63:
                    raise ChainDataError("protobuf varint runs past its message")
                byte = data[pos]
                pos += 1
                value |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
        elif wire == 1 or wire == 5:
            stop = pos + (8 if wire == 1 else 4)
            if stop > end:
                raise ChainDataError("protobuf field runs past its message")
            value, pos = int.from_bytes(data[pos:stop], "little"), stop
        else:
            raise ChainDataError(f"protobuf wire type {wire} is not used by java-tron")
        values = fields.get(number)
        if values is None:
            fields[number] = [value]
        else:
            values.append(value)
    return fields


def _int(fields: Fields, number: int) -> int:
    values = fields.get(number)
    if not values:
        return 0
    value = values[-1]  # proto3: the last one wins
    if not isinstance(value, int):
        raise ChainDataError(f"protobuf field {number} is not a number")
    return value - (1 << 64) if value >= 1 << 63 else value  # int64 two's complement


def _bytes(fields: Fields, number: int) -> bytes:
    values = fields.get(number)
    if not values:
        return b""
    value = values[-1]
    if not isinstance(value, bytes):
        raise ChainDataError(f"protobuf field {number} is not bytes")
    return value


@dataclass(frozen=True, slots=True)
class DecodedContract:
    """The one contract of a transaction as its bytes say (fields not used by a kind are empty)."""

    kind: str  # TransferContract, TransferAssetContract, TriggerSmartContract, or "type <n>"
    owner: bytes  # 21-byte addresses (0x41 prefix)
    to: bytes  # to_address, or the called contract_address of a TriggerSmartContract
    amount: int  # sun of a TransferContract, units of a TRC-10 transfer, call_value of a call
    asset_name: bytes = b""  # TRC-10 token id
    data: bytes = b""  # call data of a TriggerSmartContract


def decode_raw_data(raw: bytes) -> DecodedContract | None:
    """The first contract of a serialized ``Transaction.raw`` (java-tron executes only that
    one), or None when the transaction carries none."""
    contracts = parse_message(raw).get(11, [])
    if not contracts:
        return None
    first = contracts[0]
    if not isinstance(first, bytes):
        raise ChainDataError("transaction contract is not a message")
    contract = parse_message(first)
    number = _int(contract, 1)
    parameter = parse_message(_bytes(contract, 2))
    value = parse_message(_bytes(parameter, 2))
    kind = _NAMES.get(number, f"type {number}")
    if kind == "TransferContract":
        return DecodedContract(kind, _bytes(value, 1), _bytes(value, 2), _int(value, 3))
    if kind == "TransferAssetContract":
        return DecodedContract(
            kind, _bytes(value, 2), _bytes(value, 3), _int(value, 4), asset_name=_bytes(value, 1)
        )
    if kind == "TriggerSmartContract":
        return DecodedContract(
            kind, _bytes(value, 1), _bytes(value, 2), _int(value, 3), data=_bytes(value, 4)
        )
    return DecodedContract(kind, b"", b"", 0)


def decode_transaction(data: bytes) -> tuple[bytes, list[str]]:
    """(raw bytes, signatures hex) of a whole serialized ``Transaction`` (what
    ``/wallet/broadcasthex`` carries)."""
    fields = parse_message(data)
    raws = fields.get(1, [])
    if len(raws) != 1 or not isinstance(raws[0], bytes):
        raise ChainDataError("a transaction needs exactly one raw_data")
    signatures = [s.hex() for s in fields.get(2, []) if isinstance(s, bytes)]
    return raws[0], signatures


def raw_data_json(raw: bytes) -> dict[str, Any]:
    """java-tron's JSON ``raw_data`` (visible=false) of serialized ``Transaction.raw`` bytes:
    the inverse of ``encode_raw_data`` for the three contract types it writes."""
    fields = parse_message(raw)
    contract = decode_raw_data(raw)
    if contract is None or contract.kind not in CONTRACT_TYPES:
        raise ChainDataError("a transaction of a contract type chaingate does not write")
    value: dict[str, Any] = {"owner_address": contract.owner.hex()}
    if contract.kind == "TriggerSmartContract":
        value["contract_address"] = contract.to.hex()
        if contract.data:
            value["data"] = contract.data.hex()
        if contract.amount:
            value["call_value"] = contract.amount
    else:
        value["to_address"] = contract.to.hex()
        value["amount"] = contract.amount
        if contract.asset_name:
            value["asset_name"] = contract.asset_name.hex()
    out: dict[str, Any] = {
        "contract": [
            {
                "parameter": {
                    "value": value,
                    "type_url": f"type.googleapis.com/protocol.{contract.kind}",
                },
                "type": contract.kind,
            }
        ],
        "ref_block_bytes": _bytes(fields, 1).hex(),
        "ref_block_hash": _bytes(fields, 4).hex(),
        "expiration": _int(fields, 8),
        "timestamp": _int(fields, 14),
    }
    if _int(fields, 18):
        out["fee_limit"] = _int(fields, 18)
    if encode_raw_data(out) != raw:
        raise ChainDataError("the transaction carries fields chaingate does not write")
    return out
