"""The EVM block hash recomputed from the header fields a node serves (keccak256 of RLP).

What makes every other field of a block answer trustworthy: the hash the watcher links to its
stored tip commits to ``logsBloom`` (so the completeness check of eth_getLogs means something),
to ``parentHash`` and to the roots. An endpoint that edits a field, or names a block by a hash
it does not have, fails here, inside the pool, on its own account.

Fields in header order, with the ones later forks appended (London: baseFeePerGas, Shanghai:
withdrawalsRoot, Cancun: blobGasUsed, excessBlobGas, parentBeaconBlockRoot, Prague:
requestsHash): a field is encoded when the node serves it, which is how nodes render headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eth_utils.crypto import keccak

from chaingate.errors import ChainDataError

# (JSON key, kind): "b" fixed bytes, "q" quantity (big-endian without leading zeros)
_BASE = (
    ("parentHash", "b"),
    ("sha3Uncles", "b"),
    ("miner", "b"),
    ("stateRoot", "b"),
    ("transactionsRoot", "b"),
    ("receiptsRoot", "b"),
    ("logsBloom", "b"),
    ("difficulty", "q"),
    ("number", "q"),
    ("gasLimit", "q"),
    ("gasUsed", "q"),
    ("timestamp", "q"),
    ("extraData", "b"),
    ("mixHash", "b"),
    ("nonce", "b"),
)
_LATER = (
    ("baseFeePerGas", "q"),
    ("withdrawalsRoot", "b"),
    ("blobGasUsed", "q"),
    ("excessBlobGas", "q"),
    ("parentBeaconBlockRoot", "b"),
    ("requestsHash", "b"),
)


def _length(prefix: int, size: int) -> bytes:
    if size < 56:
        return bytes([prefix + size])
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([prefix + 55 + len(raw)]) + raw


def _rlp_bytes(data: bytes) -> bytes:
    if len(data) == 1 and data[0] < 0x80:
        return data
    return _length(0x80, len(data)) + data


def _field(raw: Mapping[str, Any], key: str, kind: str) -> bytes:
    value = raw.get(key)
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ChainDataError(f"block header field {key} is not hex: {value!r:.40}")
    try:
        if kind == "q":
            number = int(value, 16)
            return number.to_bytes((number.bit_length() + 7) // 8, "big")
        return bytes.fromhex(value[2:])
    except ValueError:
        raise ChainDataError(f"block header field {key} is not hex: {value!r:.40}") from None


def header_hash(raw: Mapping[str, Any]) -> str:
    """``0x`` + keccak256(rlp(header)) of a block answer, lowercase."""
    items = [_rlp_bytes(_field(raw, key, kind)) for key, kind in _BASE]
    for position, (key, kind) in enumerate(_LATER):
        if key not in raw:
            # A later field without the earlier ones would be another header layout.
            if any(k in raw for k, _ in _LATER[position + 1 :]):
                raise ChainDataError(f"block header has later fork fields but no {key}")
            break
        items.append(_rlp_bytes(_field(raw, key, kind)))
    payload = b"".join(items)
    return "0x" + keccak(_length(0xC0, len(payload)) + payload).hex()
