"""Bitcoin codec on real mainnet blocks, exact amounts, and refusal of doctored node answers."""

from __future__ import annotations

import copy
import hashlib
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from chaingate.chains.bitcoin.codec import (
    RawBlock,
    check_block,
    header_hash,
    transfers_in_block,
)
from chaingate.errors import ChainDataError

DATA = Path(__file__).parent / "data" / "bitcoin"

GENESIS_HASH = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
GENESIS_SCRIPT = (
    "4104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f355"
    "04e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac"
)
BLOCK_170_HASH = "00000000d1145790a8694403d4063f323d499e655c83426834d4ce2f8dd4a2ee"
BLOCK_170_SPEND = "f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16"
# Hal Finney's key (10 BTC) and Satoshi's change (40 BTC) in the first person-to-person payment.
HAL_SCRIPT = (
    "4104ae1a62fe09c5f51b13905f07f06b99a2f7159b2225f374cd378d71302fa28414e7aab37397f554a7df5f"
    "142c21c1b7303b8a0626f1baded5c72a704f7e6cd84cac"
)
SATOSHI_CHANGE_SCRIPT = (
    "410411db93e1dcdb8a016b49840f8c53bc1eb68a382e97b1482ecad7b148a6909a5cb2e0eaddfb84ccf97444"
    "64f82e160bfa9b8b64f9d4c03f999b8643f656b412a3ac"
)
BLOCK_170_COINBASE_SCRIPT = (
    "4104d46c4968bde02899d2aa0963367c7a6ce34eec332b32e42e5f3407e052d64ac625da6f0718e7b3021404"
    "34bd725706957c092db53805b821a85b23a7ac61725bac"
)


# --- a small test-only decoder: raw block bytes -> the getblock verbosity-2 shape ------------
class _Reader:
    def __init__(self, raw: bytes) -> None:
        self.raw, self.pos = raw, 0

    def take(self, n: int) -> bytes:
        chunk = self.raw[self.pos : self.pos + n]
        if len(chunk) != n:
            raise ValueError("truncated")
        self.pos += n
        return chunk

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "little")

    def varint(self) -> int:
        first = self.uint(1)
        width = {0xFD: 2, 0xFE: 4, 0xFF: 8}.get(first)
        return first if width is None else self.uint(width)


def _dsha(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def _decode_tx(r: _Reader) -> dict[str, Any]:
    start = r.pos
    r.take(4)  # version
    vin = []
    for _ in range(r.varint()):
        prev, index = r.take(32)[::-1].hex(), r.uint(4)
        script = r.take(r.varint()).hex()
        r.take(4)  # sequence
        vin.append({"coinbase": script} if prev == "0" * 64 else {"txid": prev, "vout": index})
    vout = []
    for n in range(r.varint()):
        sats = r.uint(8)
        script = r.take(r.varint()).hex()
        kind = "nulldata" if script.startswith("6a") else "pubkey"
        value = (Decimal(sats) / Decimal(100_000_000)).quantize(Decimal("0.00000001"))
        vout.append({"value": value, "n": n, "scriptPubKey": {"hex": script, "type": kind}})
    r.take(4)  # locktime (pre-SegWit block: no witness to strip before hashing)
    txid = _dsha(r.raw[start : r.pos])[::-1].hex()
    return {"txid": txid, "hex": r.raw[start : r.pos].hex(), "vin": vin, "vout": vout}


def decode_raw_block(raw: bytes, height: int) -> RawBlock:
    r = _Reader(raw)
    version = r.uint(4)
    prev = r.take(32)[::-1].hex()
    merkle = r.take(32)[::-1].hex()
    time, bits, nonce = r.uint(4), r.take(4)[::-1].hex(), r.uint(4)
    txs = [_decode_tx(r) for _ in range(r.varint())]
    assert r.pos == len(raw), "trailing bytes after the last transaction"
    block = {
        "hash": _dsha(raw[:80])[::-1].hex(),
        "height": height,
        "version": version,
        "previousblockhash": prev,
        "merkleroot": merkle,
        "time": time,
        "bits": bits,
        "nonce": nonce,
        "tx": txs,
    }
    return block  # type: ignore[return-value]


def genesis() -> RawBlock:
    data: RawBlock = json.loads(
        (DATA / "genesis-getblock-v2.json").read_text(), parse_float=Decimal
    )
    return data


def block_170() -> RawBlock:
    return decode_raw_block(bytes.fromhex((DATA / "block-170.hex").read_text().strip()), 170)


# --- real mainnet blocks --------------------------------------------------------------------
def test_genesis_getblock_v2_is_authentic_and_pays_50_btc_to_satoshi() -> None:
    block = genesis()
    txs = check_block(block, GENESIS_HASH, 0)  # header hashes to the real genesis hash
    found = transfers_in_block(
        "bitcoin-mainnet", "BTC", block, txs, {bytes.fromhex(GENESIS_SCRIPT)}
    )
    assert [(t.txid, t.position, t.amount, t.coinbase) for t in found] == [
        (block["merkleroot"], "vout:0", 5_000_000_000, True)
    ]
    assert found[0].block_number == 0 and found[0].block_hash == GENESIS_HASH


def test_block_170_pays_hal_finney_10_btc_and_satoshi_40_btc_change() -> None:
    block = block_170()
    txs = check_block(block, BLOCK_170_HASH, 170)  # real PoW hash, merkle root from tx bytes
    watched = {
        bytes.fromhex(s) for s in (HAL_SCRIPT, SATOSHI_CHANGE_SCRIPT, BLOCK_170_COINBASE_SCRIPT)
    }
    found = transfers_in_block("bitcoin-mainnet", "BTC", block, txs, watched)
    summary = [(t.txid, t.position, t.to, t.amount, t.coinbase) for t in found]
    coinbase_txid = block["tx"][0]["txid"]
    assert summary == [
        (coinbase_txid, "vout:0", BLOCK_170_COINBASE_SCRIPT, 5_000_000_000, True),
        (BLOCK_170_SPEND, "vout:0", HAL_SCRIPT, 1_000_000_000, False),
        (BLOCK_170_SPEND, "vout:1", SATOSHI_CHANGE_SCRIPT, 4_000_000_000, False),
    ]
    assert all(t.block_number == 170 and t.block_hash == BLOCK_170_HASH for t in found)


def test_unwatched_outputs_are_not_transfers() -> None:
    block = block_170()
    txs = check_block(block, BLOCK_170_HASH, 170)
    assert (
        transfers_in_block(
            "bitcoin-mainnet", "BTC", block, txs, {bytes.fromhex("0014" + "00" * 20)}
        )
        == []
    )


# --- refusing doctored node answers -----------------------------------------------------------
def test_block_with_another_hash_than_asked_is_refused() -> None:
    with pytest.raises(ChainDataError, match="asked for block"):
        check_block(block_170(), GENESIS_HASH, 170)


def test_block_at_another_height_than_asked_is_refused() -> None:
    with pytest.raises(ChainDataError, match="height"):
        check_block(block_170(), BLOCK_170_HASH, 171)


def test_block_whose_header_does_not_hash_to_its_claimed_hash_is_refused() -> None:
    doctored = copy.deepcopy(block_170())
    doctored["nonce"] += 1
    with pytest.raises(ChainDataError, match="do not hash"):
        check_block(doctored, BLOCK_170_HASH, 170)


def test_block_with_an_injected_transaction_is_refused() -> None:
    doctored = copy.deepcopy(block_170())
    doctored["tx"].append(copy.deepcopy(doctored["tx"][1]))  # real bytes, not in the root
    with pytest.raises(ChainDataError, match="merkle"):
        check_block(doctored, BLOCK_170_HASH, 170)


def test_amounts_come_from_the_bytes_not_from_the_json_beside_them() -> None:
    doctored = copy.deepcopy(block_170())
    doctored["tx"][1]["vout"][0]["value"] = Decimal("1000")  # type: ignore[typeddict-item]
    doctored["tx"][1]["vout"][0]["scriptPubKey"]["hex"] = "0014" + "11" * 20  # type: ignore[typeddict-item]
    txs = check_block(doctored, BLOCK_170_HASH, 170)
    (found,) = transfers_in_block(
        "bitcoin-mainnet", "BTC", doctored, txs, {bytes.fromhex(HAL_SCRIPT)}
    )
    assert (found.to, found.amount) == (HAL_SCRIPT, 1_000_000_000)


def test_transaction_bytes_that_do_not_hash_to_the_txid_are_refused() -> None:
    doctored = copy.deepcopy(block_170())
    raw = bytearray.fromhex(doctored["tx"][1]["hex"])
    hal_value_at = raw.index((1_000_000_000).to_bytes(8, "little"))
    raw[hal_value_at : hal_value_at + 8] = (2_000_000_000).to_bytes(8, "little")
    doctored["tx"][1]["hex"] = raw.hex()
    with pytest.raises(ChainDataError, match="hashes otherwise"):
        check_block(doctored, BLOCK_170_HASH, 170)


@pytest.mark.parametrize("hex_text", [None, "zz", "01000000", "01000000" + "00" * 3, ""])
def test_malformed_transaction_bytes_are_chain_data_errors(hex_text: object) -> None:
    doctored = copy.deepcopy(block_170())
    doctored["tx"][1]["hex"] = hex_text  # type: ignore[typeddict-item]
    with pytest.raises(ChainDataError):
        check_block(doctored, BLOCK_170_HASH, 170)


def test_header_hash_recomputes_real_block_hashes() -> None:
    assert header_hash(genesis()) == GENESIS_HASH
    assert header_hash(block_170()) == BLOCK_170_HASH
