"""Proof that an eth_getLogs answer is complete for the tokens we list, block by block.

For each block of a scanned range: if its logsBloom admits a Transfer of a listed token (the
token's address and the Transfer topic) but the answer holds no such log, the block is suspect.
A suspicion is settled by the block's receipts (named by the block hash): when they hold no
Transfer of that token the bloom gave a false positive and the answer stands; when they do, the
block's logs are fetched again by block hash and every endpoint that still leaves them out
fails that call inside the pool (failed over and benched). If no endpoint serves them the scan
fails, so the cursor never passes a block whose logs were not proven complete.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import structlog

from chaingate.chains.evm.bloom import admits, bloom_mask, hex_bytes, parse_bloom
from chaingate.chains.evm.hexdata import hex_int
from chaingate.chains.evm.rpc import EvmRpc, RawBlock, RawLog, RawReceipt
from chaingate.errors import ChainDataError, IncompleteLogsError

log = structlog.get_logger(__name__)


def transfer_masks(contracts: Sequence[str], transfer_topic: str) -> dict[str, int]:
    """Per listed contract (lowercase 0x), the bloom bits of its Transfer event."""
    topic = bloom_mask(hex_bytes(transfer_topic))
    return {c.lower(): bloom_mask(hex_bytes(c)) | topic for c in contracts}


def suspects(
    blocks: Sequence[RawBlock], logs: Sequence[RawLog], masks: Mapping[str, int]
) -> dict[int, list[str]]:
    """Block number -> listed contracts whose Transfer the bloom admits and the answer lacks."""
    if not masks:
        return {}
    present: set[tuple[str, str]] = set()
    for raw in logs:
        address = raw["address"].lower()
        if address in masks:
            present.add((raw["blockNumber"], address))
    found: dict[int, list[str]] = {}
    for block in blocks:
        bloom = parse_bloom(block["logsBloom"])
        number = block["number"]
        missing = [
            contract
            for contract, mask in masks.items()
            if admits(bloom, mask) and (number, contract) not in present
        ]
        if missing:
            found[int(number, 16)] = missing
    return found


def _receipt_transfers(
    receipts: Sequence[RawReceipt], contracts: Sequence[str], topic: str
) -> list[tuple[str, int]]:
    """(contract, logIndex) of every Transfer log of ``contracts`` in a block's receipts."""
    wanted = set(contracts)
    found: list[tuple[str, int]] = []
    for receipt in receipts:
        if hex_int(receipt["status"], "receipt status") != 1:
            continue  # a failed transaction's logs are discarded
        for entry in receipt["logs"]:
            address = entry["address"].lower()
            if address in wanted and entry["topics"][:1] == [topic]:
                found.append((address, hex_int(entry["logIndex"], "logIndex")))
    return found


async def complete_logs(
    rpc: EvmRpc,
    blocks: Sequence[RawBlock],
    logs: list[RawLog],
    masks: Mapping[str, int],
    topic: str,
) -> list[RawLog]:
    """``logs`` with every suspect block's logs proven complete (fetched again if need be)."""
    todo = suspects(blocks, logs, masks)
    if not todo:
        return logs
    by_number = {int(b["number"], 16): b["hash"].lower() for b in blocks}
    numbers = sorted(todo)
    receipts = await rpc.get_block_receipts(numbers, [by_number[n] for n in numbers])
    replaced: dict[int, list[RawLog]] = {}
    for number, block_receipts in zip(numbers, receipts, strict=True):
        expected = _receipt_transfers(block_receipts, todo[number], topic)
        if not expected:
            continue  # the bloom's false positive: the block holds no such Transfer
        log.warning(
            "evm_logs_incomplete",
            network=rpc.network,
            block=number,
            missing=len(expected),
            contracts=todo[number],
        )

        def must_hold(answer: list[RawLog], want: list[tuple[str, int]] = expected) -> str | None:
            got = {(e["address"].lower(), hex_int(e["logIndex"], "logIndex")) for e in answer}
            lacking = [item for item in want if item not in got]
            return None if not lacking else f"Transfer logs {lacking[:3]}"

        try:
            replaced[number] = await rpc.get_block_logs(
                number, by_number[number], [topic], must_hold
            )
        except ChainDataError as exc:
            raise IncompleteLogsError(
                f"{rpc.network}: no endpoint served the complete logs of block {number}"
            ) from exc
    if not replaced:
        return logs
    kept = [raw for raw in logs if hex_int(raw["blockNumber"], "blockNumber") not in replaced]
    return kept + [raw for number in sorted(replaced) for raw in replaced[number]]
