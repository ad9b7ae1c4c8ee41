"""Bitcoin transactions decoded from their serialized bytes (the ``hex`` a node serves).

The bytes are what the txid is the hash of: double SHA-256 of the serialization without the
witness (BIP141). So the outputs read here (value, scriptPubKey) are the ones the block's merkle
root commits to, unlike the JSON ``vout`` a node renders beside them, which nothing checks.
Any malformation is a ChainDataError.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from chaingate.errors import ChainDataError

_NULL_PREVOUT = b"\x00" * 32 + b"\xff\xff\xff\xff"
_OP_RETURN = 0x6A
MAX_MONEY = 21_000_000 * 100_000_000


@dataclass(frozen=True, slots=True)
class TxOutput:
    index: int
    sats: int
    script: str  # scriptPubKey, lowercase hex (what deposits are matched by)

    @property
    def spendable(self) -> bool:
        """Whether the output can pay anyone (an OP_RETURN data carrier never can)."""
        return not self.script.startswith("6a") and bool(self.script)


@dataclass(frozen=True, slots=True)
class DecodedTx:
    txid: str  # display order (reversed), as nodes show it
    coinbase: bool
    outputs: tuple[TxOutput, ...]


class _Reader:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.raw):
            raise ChainDataError("transaction bytes end early")
        chunk = self.raw[self.pos : end]
        self.pos = end
        return chunk

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "little")

    def varint(self) -> int:
        first = self.uint(1)
        width = {0xFD: 2, 0xFE: 4, 0xFF: 8}.get(first)
        return first if width is None else self.uint(width)

    def count(self) -> int:
        # Every counted item takes at least one byte: a larger count is a lie, not a loop.
        n = self.varint()
        if n > len(self.raw) - self.pos:
            raise ChainDataError("transaction count exceeds its bytes")
        return n


def _dsha256(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def decode_tx(raw: bytes) -> DecodedTx:
    """The txid and outputs of one serialized transaction (with or without witness)."""
    r = _Reader(raw)
    version = r.take(4)
    segwit = raw[4:6] == b"\x00\x01"
    if segwit:
        r.take(2)
    body_start = r.pos
    inputs = r.count()
    if inputs == 0:
        raise ChainDataError("transaction without inputs")
    coinbase = False
    for _ in range(inputs):
        prevout = r.take(36)
        coinbase = inputs == 1 and prevout == _NULL_PREVOUT
        r.take(r.varint())  # scriptSig
        r.take(4)  # sequence
    outputs: list[TxOutput] = []
    for index in range(r.count()):
        sats = r.uint(8)
        if sats > MAX_MONEY:
            raise ChainDataError(f"output {index} pays more than all bitcoin")
        outputs.append(TxOutput(index, sats, r.take(r.varint()).hex()))
    body_end = r.pos
    if segwit:
        for _ in range(inputs):
            for _ in range(r.count()):
                r.take(r.varint())
    locktime = r.take(4)
    if r.pos != len(raw):
        raise ChainDataError("trailing bytes after the transaction")
    stripped = version + raw[body_start:body_end] + locktime
    return DecodedTx(_dsha256(stripped)[::-1].hex(), coinbase, tuple(outputs))


def decode_tx_hex(text: object) -> DecodedTx:
    if not isinstance(text, str):
        raise ChainDataError("transaction without hex")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ChainDataError("transaction hex is not hex") from None
    return decode_tx(raw)
