"""Proof that a block's receipts hold every log of the block, so that eth_getLogs can be skipped.

When (nearly) every block of a range holds a deposit candidate, the adapter reads every block's
receipts anyway, and they carry the very logs eth_getLogs would return: it then takes the
Transfer logs from the receipts and asks no eth_getLogs (the node's work and the decoding of the
same logs a second time). This check makes that path as hard to lie to as the eth_getLogs one
(logcheck.py), and harder, for the block header (hash recomputed in header.py) commits to the
logsBloom that everything here is held against:

- one receipt per transaction, in the block's order, each naming its transaction and index;
- every log of a receipt names that receipt's transaction and the block;
- a failed transaction has no logs (its effects, events included, were undone);
- the logs of each receipt set exactly the bits of that receipt's ``logsBloom``, and the
  receipts' blooms together are the header's ``logsBloom``.

An endpoint that drops a log from a receipt must also clear the log's bits from that receipt's
bloom, and then the receipts no longer add up to the header's bloom, unless every bit of the
dropped log is set by other logs of the same receipt (address, topics); an invented log must
find all its bits already set in the header. Only a log made entirely of its own receipt's
other items can go unseen: a bloom's limit, the same one logcheck.py lives with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chaingate.chains.evm.bloom import BLOOM_BYTES, item_mask, parse_bloom
from chaingate.chains.evm.hexdata import hex_int
from chaingate.errors import ChainDataError, IncompleteLogsError

ZERO_BLOOM = "0x" + "00" * BLOOM_BYTES


def check_receipts_cover(
    block: Mapping[str, Any], receipts: Sequence[Mapping[str, Any]], network: str
) -> None:
    """ChainDataError unless ``receipts`` are the whole set of ``block``'s receipts with every
    log the header's bloom holds (IncompleteLogsError when logs are missing). ``block`` and the
    receipts' shapes are checked already (rpc.py)."""
    number = int(block["number"], 16)
    txs = block["transactions"]
    if len(receipts) != len(txs):
        raise ChainDataError(
            f"{network}: block {number} has {len(txs)} transactions and {len(receipts)} receipts"
        )
    block_hash = block["hash"].lower()
    union = 0
    for index, (tx, receipt) in enumerate(zip(txs, receipts, strict=True)):
        txid = receipt["transactionHash"]
        if not _same(txid, tx["hash"]):
            raise ChainDataError(f"{network}: receipt {index} of block {number} is another tx's")
        position = receipt.get("transactionIndex")
        if position != hex(index) and hex_int(position, "receipt transactionIndex") != index:
            raise ChainDataError(f"{network}: receipt {index} of block {number} is out of place")
        logs = receipt["logs"]
        bloom: Any = receipt.get("logsBloom")  # parse_bloom refuses a non-string
        if not logs:
            if bloom != ZERO_BLOOM and parse_bloom(bloom) != 0:
                raise IncompleteLogsError(
                    f"{network}: receipt {index} of block {number} lost its logs"
                )
            continue
        status = receipt["status"]
        if status != "0x1" and hex_int(status, "receipt status") != 1:
            raise ChainDataError(f"{network}: failed transaction {txid} with logs")
        mask = 0
        for entry in logs:
            if not (
                _same(entry["transactionHash"], txid) and _same(entry["blockHash"], block_hash)
            ):
                raise ChainDataError(
                    f"{network}: a log of {txid} names another transaction or block"
                )
            mask |= item_mask(entry["address"])
            for topic in entry["topics"]:
                mask |= item_mask(topic)
        _held(mask, parse_bloom(bloom), f"receipt of {txid}", network)
        union |= mask
    _held(union, parse_bloom(block["logsBloom"]), f"block {number}", network)


def _held(logs: int, bloom: int, what: str, network: str) -> None:
    if logs == bloom:
        return
    if logs & ~bloom:
        raise ChainDataError(f"{network}: logs of {what} that its logsBloom does not hold")
    raise IncompleteLogsError(f"{network}: logs of {what} lack what its logsBloom holds")


def _same(a: str, b: str) -> bool:
    """Equal hex, whatever its case (exact first: nodes answer lowercase)."""
    return a == b or a.lower() == b.lower()
