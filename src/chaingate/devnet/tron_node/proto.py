"""Protobuf wire encoding of the java-tron messages whose hashes matter.

Only what ids and signatures are computed over: ``Transaction.raw`` (txID = sha256 of it) with the
three contract types chaingate moves value with, and ``BlockHeader.raw`` (blockID = 8-byte block
number || sha256(raw)[8:]). Field numbers follow java-tron's core/Tron.proto and
core/contract/*.proto; proto3 rules apply (default values are not written, fields in number
order), which is what makes the bytes equal java-tron's. Checked in the tests against real mainnet
raw_data_hex/txID pairs and against tronpy's own protobuf-based txID.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from chaingate.chains.tron.addresses import any_to_raw

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
        _int_field(1, int(header["timestamp"]))
        + _bytes_field(2, bytes.fromhex(header.get("txTrieRoot", "")))
        + _bytes_field(3, bytes.fromhex(header.get("parentHash", "")))
        + _int_field(7, int(header.get("number", 0)))
        + _int_field(8, int(header.get("witness_id", 0)))
        + _bytes_field(9, bytes.fromhex(header.get("witness_address", "")))
        + _int_field(10, int(header.get("version", 0)))
    )


def block_id_of(number: int, header_raw: bytes) -> str:
    return number.to_bytes(8, "big").hex() + hashlib.sha256(header_raw).hexdigest()[16:]
