"""Bitcoin Core blocks (getblock verbosity 2) checked and turned into Transfers. No I/O.

The header fields must hash to the block hash asked for; each transaction is decoded from its
``hex`` (chains/bitcoin/rawtx.py), must hash to its txid, and those hashes must build the merkle
root. Amounts and scripts come from those bytes in integer satoshis, never from the JSON
``vout`` a node renders beside them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import NotRequired, TypedDict

from chaingate.chains.base import WatchedAddresses
from chaingate.chains.bitcoin.rawtx import DecodedTx, decode_tx_hex
from chaingate.domain import Transfer
from chaingate.errors import ChainDataError


class RawTx(TypedDict):
    txid: str
    hex: str  # the serialized transaction: the only part whose hash is checked, so the only
    # part amounts and scripts are read from ("vin"/"vout" beside it are a rendering)


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


def transfers_in_tx(
    network: str,
    asset: str,
    tx: DecodedTx,
    watched: WatchedAddresses,
    block_number: int | None = None,
    block_hash: str | None = None,
) -> list[Transfer]:
    """Every output of ``tx`` paying a watched scriptPubKey: one Transfer (deposit) each."""
    return [
        Transfer(
            network=network,
            txid=tx.txid,
            position=f"vout:{out.index}",
            to=out.script,
            amount=out.sats,
            asset=asset,
            block_number=block_number,
            block_hash=block_hash,
            coinbase=tx.coinbase,
        )
        for out in tx.outputs
        # The membership test comes first: it is the only work done for most outputs.
        if bytes.fromhex(out.script) in watched and out.spendable
    ]


def spendable_outputs(tx: DecodedTx) -> tuple[tuple[str, int, int], ...]:
    """(scriptPubKey hex, output index, satoshis) of every output that could pay a user.

    The compact form the adapter keeps for mempool transactions, so that an address issued
    after a transaction was first decoded still finds it (the match happens on each read).
    """
    return tuple((out.script, out.index, out.sats) for out in tx.outputs if out.spendable)


def transfers_in_block(
    network: str,
    asset: str,
    block: RawBlock,
    txs: Sequence[DecodedTx],
    watched: WatchedAddresses,
) -> list[Transfer]:
    """Transfers to ``watched`` in ``block``, from its transactions as ``check_block`` decoded
    them from their bytes (never from the JSON ``vout`` beside them)."""
    found: list[Transfer] = []
    for tx in txs:
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


def check_block(block: RawBlock, want_hash: str, want_height: int) -> list[DecodedTx]:
    """check_header, plus every transaction decoded from its bytes: each must hash to the txid
    the node names, and those hashes must build the header's merkle root. Returns the decoded
    transactions, the only source of amounts and scripts."""
    check_header(block, want_hash, want_height)
    txs = block.get("tx")
    if not isinstance(txs, list) or not txs:
        raise ChainDataError(f"block {want_hash}: no transaction list")
    decoded: list[DecodedTx] = []
    for tx in txs:
        if not isinstance(tx, dict):
            raise ChainDataError(f"block {want_hash}: malformed transaction")
        one = decode_tx_hex(tx.get("hex"))
        if one.txid != tx.get("txid"):
            raise ChainDataError(f"block {want_hash}: tx {tx.get('txid')!r:.70} hashes otherwise")
        decoded.append(one)
    if merkle_root([tx.txid for tx in decoded]) != block["merkleroot"]:
        raise ChainDataError(f"block {want_hash}: transactions do not match the merkle root")
    return decoded


def check_tx(raw: object, want_txid: str) -> DecodedTx:
    """A getrawtransaction answer decoded from its bytes; ChainDataError unless it is that tx."""
    if not isinstance(raw, dict):
        raise ChainDataError(f"getrawtransaction {want_txid}: not an object")
    decoded = decode_tx_hex(raw.get("hex"))
    if decoded.txid != want_txid:
        raise ChainDataError(f"getrawtransaction {want_txid}: bytes hash to {decoded.txid}")
    return decoded


def parent_hash(header: BlockHeader | RawBlock) -> str:
    return header.get("previousblockhash", GENESIS_PARENT)
