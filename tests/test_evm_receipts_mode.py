"""The dense path of EvmAdapter.scan (issue 9): every block's receipts read, the Transfer logs
taken from them, no eth_getLogs, and an endpoint that drops or invents a log in its receipts
caught by the header's logsBloom (chains/evm/receiptcheck.py). Real anvil, real pool; the lies
are edits of real answers, checked where the pool checks them."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from chaingate.chains.evm.adapter import EvmAdapter, LogSource
from chaingate.chains.evm.addresses import address_bytes
from chaingate.chains.evm.bloom import log_mask
from chaingate.chains.evm.codec import TRANSFER_TOPIC
from chaingate.chains.evm.rpc import EvmRpc
from chaingate.devnet import evm_contracts as dev
from chaingate.errors import ChainDataError, IncompleteLogsError
from chaingate.providers import EndpointPool
from test_evm_adapter import (
    E18,
    SENDER,
    Counting,
    Devnet,
    Tampering,
    anvil_url,
    block_of,
    devnet,
    new_address,
    pool,
)

__all__ = ["anvil_url", "devnet", "pool"]  # the fixtures, shared with test_evm_adapter


def bloom_hex(mask: int) -> str:
    return "0x" + mask.to_bytes(256, "big").hex()


def drop_log(receipts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Receipts lose their logs; their logsBloom still holds them."""
    return [{**r, "logs": []} for r in receipts]


def drop_log_and_bloom(receipts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A careful liar: the logs and their bits in the receipts' blooms both gone."""
    return [{**r, "logs": [], "logsBloom": bloom_hex(0)} for r in receipts]


def invent_log(receipts: list[dict[str, Any]], token: str = "") -> list[dict[str, Any]]:
    """A plain ETH transfer's receipt made to carry a Transfer of 1 ``token`` to ALICE, its
    own logsBloom made to agree."""
    forged = []
    for r in receipts:
        if r["logs"]:
            forged.append(r)
            continue
        fake = {
            "address": token,
            "topics": [TRANSFER_TOPIC, "0x" + "00" * 12 + SENDER[2:].lower(), ALICE_TOPIC],
            "data": "0x" + (E18).to_bytes(32, "big").hex(),
            "blockNumber": r["blockNumber"],
            "blockHash": r["blockHash"],
            "transactionHash": r["transactionHash"],
            "transactionIndex": r["transactionIndex"],
            "logIndex": "0x0",
            "removed": False,
        }
        forged.append(
            {**r, "logs": [fake], "logsBloom": bloom_hex(log_mask(fake["address"], fake["topics"]))}
        )
    return forged


def logs_of_a_failed_tx(receipts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "status": "0x0"} if r["logs"] else r for r in receipts]


def out_of_place(receipts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "transactionIndex": hex(i + 1)} for i, r in enumerate(receipts)]


def one_missing(receipts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return receipts[:-1]


ALICE = "0x" + "ab" * 20
ALICE_TOPIC = "0x" + "00" * 12 + "ab" * 20


def receipts_only(client: Any, devnet: Devnet) -> EvmAdapter:
    adapter = EvmAdapter(devnet.network, client)
    adapter.log_source = LogSource(threshold=0.0)
    return adapter


async def two_blocks(devnet: Devnet, alice: str) -> tuple[int, int, str]:
    """An ETH payment to a stranger, then a NEXO payment to ``alice`` (a block each)."""
    eth_tx = await dev.send_eth(devnet.url, SENDER, new_address(), E18)
    token_tx = await dev.token_transfer(devnet.url, devnet.nexo, SENDER, alice, 3 * E18)
    return await block_of(devnet.url, eth_tx), await block_of(devnet.url, token_tx), token_tx


async def test_a_dense_range_is_read_from_receipts_without_get_logs(
    devnet: Devnet, pool: EndpointPool
) -> None:
    alice = new_address()
    txs = [await dev.token_transfer(devnet.url, devnet.nexo, SENDER, alice, i) for i in (1, 2)]
    first, last = await block_of(devnet.url, txs[0]), await block_of(devnet.url, txs[-1])
    client = Counting(pool)
    adapter = EvmAdapter(devnet.network, client)
    by_logs = await adapter.scan(
        first, last, {address_bytes(alice)}
    )  # every block holds a deposit ...
    assert "eth_getLogs" in client.methods
    assert adapter.log_source.receipts_only  # ... so the next ranges read receipts only
    client.methods.clear()
    by_receipts = await adapter.scan(first, last, {address_bytes(alice)})
    assert "eth_getLogs" not in client.methods
    assert by_receipts == by_logs
    assert sorted(t.amount for t in by_receipts.transfers) == [1, 2]
    await dev.mine(devnet.url, 4)  # blocks without deposits: back to eth_getLogs
    head = (await adapter.head()).number
    await adapter.scan(head - 3, head, {address_bytes(alice)})
    assert not adapter.log_source.receipts_only


def test_the_log_source_follows_the_share_of_blocks_needing_receipts() -> None:
    source = LogSource()
    assert not source.receipts_only  # eth_getLogs until a range says otherwise
    source.observe(12, 20)
    assert source.receipts_only
    source.observe(2, 20)  # mainnet-like: one deposit every ten blocks
    assert not source.receipts_only


@pytest.mark.parametrize(
    ("edit", "error", "says"),
    [
        (drop_log, IncompleteLogsError, "lost its logs"),
        (drop_log_and_bloom, IncompleteLogsError, "lack what its logsBloom holds"),
        (invent_log, ChainDataError, "its logsBloom does not hold"),
        (logs_of_a_failed_tx, ChainDataError, "failed transaction"),
        (out_of_place, ChainDataError, "out of place"),
        (one_missing, ChainDataError, "receipts"),
    ],
)
async def test_receipts_that_hide_or_invent_a_log_are_caught(
    devnet: Devnet, pool: EndpointPool, edit: Any, error: type[Exception], says: str
) -> None:
    if edit is invent_log:
        edit = partial(invent_log, token=devnet.nexo.lower())
    alice = ALICE if isinstance(edit, partial) else new_address()
    first, last, token_tx = await two_blocks(devnet, alice)
    honest = await receipts_only(pool, devnet).scan(first, last, {address_bytes(alice)})
    got = [(t.txid, t.position, t.amount, t.to) for t in honest.transfers]
    assert got == [(token_tx, "log:0", 3 * E18, alice)]
    lying = receipts_only(Tampering(pool, "eth_getBlockReceipts", edit), devnet)
    with pytest.raises(error, match=says):
        await lying.scan(first, last, {address_bytes(alice)})


def test_the_receipt_shape_checks_fast_paths_accept_nothing_malformed() -> None:
    """Values equal to ones already checked skip the pattern match; nothing else does."""
    rpc = EvmRpc(None, "ethereum-devnet")  # type: ignore[arg-type]  # the checks only
    block_hash, txid = "0x" + "aa" * 32, "0x" + "bb" * 32
    log = {
        "address": "0x" + "cc" * 20,
        "topics": [TRANSFER_TOPIC],
        "data": "0x",
        "blockNumber": "0x5",
        "blockHash": block_hash,
        "transactionHash": txid,
        "logIndex": "0x0",
    }
    receipt = {
        "blockNumber": "0x5",
        "blockHash": block_hash,
        "transactionHash": txid,
        "status": "0x1",
        "logs": [log],
    }
    rpc._checked_receipts(5, block_hash, [receipt])
    rpc._checked_receipts(5, None, [receipt])
    for broken in (
        {"blockHash": None},
        {"blockNumber": "0x6"},
        {"status": "1"},
        {"transactionHash": "0x12"},
        {"logs": [{**log, "blockHash": "0x12"}]},
        {"logs": [{**log, "transactionHash": None}]},
        {"logs": [{**log, "blockNumber": "5"}]},
        {"logs": [{**log, "logIndex": None}]},
    ):
        for expected in (block_hash, None):
            with pytest.raises(ChainDataError):
                rpc._checked_receipts(5, expected, [{**receipt, **broken}])
