"""Pure decoding of Bitcoin Core JSON (getblock verbosity 2, getrawtransaction verbose).

No I/O. Amounts arrive as ``Decimal`` (the provider pool decodes JSON numbers that way) and
leave as integer satoshis; a float is refused because it cannot carry 8 decimals exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import NotRequired, TypedDict

from chaingate.chains.base import WatchedAddresses
from chaingate.domain import Transfer
from chaingate.errors import ChainDataError

SATS_PER_COIN = Decimal(100_000_000)
# Outputs that can never pay a user: data carriers and scripts the node could not classify.
_UNSPENDABLE_TYPES = frozenset({"nulldata", "nonstandard"})


class ScriptPubKey(TypedDict):
    hex: str
    type: NotRequired[str]
    asm: NotRequired[str]
    address: NotRequired[str]


class TxOut(TypedDict):
    value: Decimal
    n: int
    scriptPubKey: ScriptPubKey


class TxIn(TypedDict, total=False):
    coinbase: str
    txid: str
    vout: int


class RawTx(TypedDict):
    txid: str
    hash: NotRequired[str]
    vin: list[TxIn]
    vout: list[TxOut]


class RawBlock(TypedDict):
    hash: str
    height: int
    version: int
    merkleroot: str
    time: int
    nonce: int
    bits: str
    tx: list[RawTx]
    previousblockhash: NotRequired[str]


class BlockHeader(TypedDict):
    hash: str
    height: int
    version: int
    merkleroot: str
    time: int
    nonce: int
    bits: str
    previousblockhash: NotRequired[str]


GENESIS_PARENT = "0" * 64


def btc_to_sats(value: object) -> int:
    """Exact satoshis of a node amount; ChainDataError unless integral and non-negative."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise ChainDataError(f"amount is {type(value).__name__}, not an exact decimal")
    try:
        sats = Decimal(value) * SATS_PER_COIN
        exact = sats == sats.to_integral_value()
    except InvalidOperation as exc:
        raise ChainDataError(f"amount {value!r} is not a number") from exc
    if not sats.is_finite() or not exact or sats < 0:
        raise ChainDataError(f"amount {value} is not a non-negative whole number of satoshis")
    return int(sats)


def is_coinbase(tx: RawTx) -> bool:
    vin = tx["vin"]
    return len(vin) == 1 and "coinbase" in vin[0]


def transfers_in_tx(
    network: str,
    asset: str,
    tx: RawTx,
    watched: WatchedAddresses,
    block_number: int | None = None,
    block_hash: str | None = None,
) -> list[Transfer]:
    """Every output of ``tx`` paying a watched scriptPubKey: one Transfer (deposit) each."""
    found: list[Transfer] = []
    coinbase: bool | None = None
    for index, out in enumerate(tx["vout"]):
        spk = out["scriptPubKey"]
        # The membership test comes first: it is the only work done for most outputs.
        if spk["hex"] not in watched or spk.get("type") in _UNSPENDABLE_TYPES:
            continue
        if out["n"] != index:
            raise ChainDataError(f"tx {tx['txid']}: output {index} reports n={out['n']}")
        if coinbase is None:
            coinbase = is_coinbase(tx)
        found.append(
            Transfer(
                network=network,
                txid=tx["txid"],
                position=f"vout:{index}",
                to=spk["hex"],
                amount=btc_to_sats(out["value"]),
                asset=asset,
                block_number=block_number,
                block_hash=block_hash,
                coinbase=coinbase,
            )
        )
    return found


def spendable_outputs(tx: RawTx) -> tuple[tuple[str, int, int], ...]:
    """(scriptPubKey hex, output index, satoshis) of every output that could pay a user.

    The compact form the adapter keeps for mempool transactions, so that an address issued
    after a transaction was first decoded still finds it (the match happens on each read).
    """
    outputs: list[tuple[str, int, int]] = []
    for index, out in enumerate(tx["vout"]):
        spk = out["scriptPubKey"]
        if spk.get("type") in _UNSPENDABLE_TYPES:
            continue
        if out["n"] != index:
            raise ChainDataError(f"tx {tx['txid']}: output {index} reports n={out['n']}")
        outputs.append((spk["hex"], index, btc_to_sats(out["value"])))
    return tuple(outputs)


def transfers_in_block(
    network: str, asset: str, block: RawBlock, watched: WatchedAddresses
) -> list[Transfer]:
    found: list[Transfer] = []
    for tx in block["tx"]:
        found.extend(transfers_in_tx(network, asset, tx, watched, block["height"], block["hash"]))
    return found


# --- integrity checks where data enters --------------------------------------------------
def _dsha256(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def header_hash(header: BlockHeader | RawBlock) -> str:
    """The block hash recomputed from the header fields (double SHA-256, display order)."""
    try:
        raw = (
            header["version"].to_bytes(4, "little", signed=True)
            + bytes.fromhex(header.get("previousblockhash", GENESIS_PARENT))[::-1]
            + bytes.fromhex(header["merkleroot"])[::-1]
            + header["time"].to_bytes(4, "little")
            + bytes.fromhex(header["bits"])[::-1]
            + header["nonce"].to_bytes(4, "little")
        )
    except (KeyError, ValueError, OverflowError, AttributeError, TypeError) as exc:
        raise ChainDataError(f"malformed block header: {type(exc).__name__}") from exc
    if len(raw) != 80:
        raise ChainDataError("malformed block header: wrong field sizes")
    return _dsha256(raw)[::-1].hex()


def merkle_root(txids: Sequence[str]) -> str:
    """Merkle root (display order) of transaction ids given in display order."""
    if not txids:
        raise ChainDataError("block without transactions")
    level = [bytes.fromhex(t)[::-1] for t in txids]
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [_dsha256(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0][::-1].hex()


def check_header(header: BlockHeader | RawBlock, want_hash: str, want_height: int) -> None:
    """ChainDataError unless ``header`` is the block asked for and hashes to its own hash."""
    if header.get("hash") != want_hash:
        raise ChainDataError(f"asked for block {want_hash}, node returned {header.get('hash')}")
    if header.get("height") != want_height:
        raise ChainDataError(
            f"block {want_hash}: asked for height {want_height}, node says {header.get('height')}"
        )
    if header_hash(header) != want_hash:
        raise ChainDataError(f"block {want_hash}: header fields do not hash to the block hash")


def check_block(block: RawBlock, want_hash: str, want_height: int) -> None:
    """check_header, plus the transaction list must produce the header's merkle root."""
    check_header(block, want_hash, want_height)
    try:
        txids = [tx["txid"] for tx in block["tx"]]
        root = merkle_root(txids)
    except (KeyError, TypeError, ValueError) as exc:
        raise ChainDataError(f"block {want_hash}: malformed transaction list") from exc
    if root != block["merkleroot"]:
        raise ChainDataError(f"block {want_hash}: transactions do not match the merkle root")


def parent_hash(header: BlockHeader | RawBlock) -> str:
    return header.get("previousblockhash", GENESIS_PARENT)
