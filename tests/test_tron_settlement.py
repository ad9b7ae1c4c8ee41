"""What the tracker decides for a TRON withdrawal transaction (chains/tron/settlement.py): from
recorded mainnet answers, and from the devnet for the expiration rule (never rebroadcast late,
dead only once the solidified head's parent is past the expiration)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chaingate.chains.tron.settlement import Fate, Settled, after_expiry, settle
from chaingate.devnet.manager import DevnetState
from chaingate.domain.batch_content import BatchContent, BatchOutput
from chaingate.errors import ChainDataError
from chaingate.signer.keystore import hot_key
from chaingate.signer.tron import sign_tron_batch, signed_transaction_bytes
from tron_support import TronKey, TronNode, plan_for

DATA = Path(__file__).parent / "data" / "tron"
TRX = 1_000_000


def test_out_of_energy_on_mainnet_is_failed_with_its_fee() -> None:
    info = json.loads((DATA / "txinfo_e63a324a_out_of_energy.json").read_text())
    tx = {"txID": info["id"], "ret": [{"contractRet": "OUT_OF_ENERGY"}]}
    fate = settle(info["id"], info, tx, expiration_ms=0, head_ms=0, solid_parent_ms=0)
    assert fate == Settled("failed", "OUT_OF_ENERGY", 66860010, 16500120, 78572, 16500120, 345, 0)


def test_a_mainnet_usdt_transfer_is_confirmed_with_its_energy() -> None:
    info = json.loads((DATA / "txinfo_block_30864600.json").read_text())[1]
    tx = {"txID": info["id"], "ret": [{"contractRet": "SUCCESS"}]}
    fate = settle(info["id"], info, tx, expiration_ms=0, head_ms=0, solid_parent_ms=0)
    assert isinstance(fate, Settled)
    assert (fate.status, fate.energy_used, fate.net_usage) == ("confirmed", 14631, 338)


def test_disagreeing_answers_and_another_txid_are_not_believed() -> None:
    info = json.loads((DATA / "txinfo_e63a324a_out_of_energy.json").read_text())
    liar = {"txID": info["id"], "ret": [{"contractRet": "SUCCESS"}]}
    with pytest.raises(ChainDataError):
        settle(info["id"], info, liar, expiration_ms=0, head_ms=0, solid_parent_ms=0)
    with pytest.raises(ChainDataError):
        settle("00" * 32, info, {}, expiration_ms=0, head_ms=0, solid_parent_ms=0)


def test_not_found_is_rebroadcast_before_expiry_waited_on_then_dead() -> None:
    kw = {"expiration_ms": 1_000}
    assert settle("ab", {}, {}, head_ms=999, solid_parent_ms=0, **kw) is Fate.REBROADCAST
    assert settle("ab", {}, {}, head_ms=1_000, solid_parent_ms=999, **kw) is Fate.WAIT
    assert settle("ab", {}, {}, head_ms=5_000, solid_parent_ms=1_000, **kw) is Fate.EXPIRED
    assert [after_expiry(0), after_expiry(1)] == ["rebuild", "fail"]


@pytest.fixture
async def node(devnet: DevnetState) -> AsyncIterator[TronNode]:
    assert devnet.tron_url is not None
    node = TronNode(devnet.tron_url)
    await node.mine(20)
    yield node


async def solid_view(
    node: TronNode, txid: str
) -> tuple[dict[str, object], dict[str, object], int, int]:
    info = await node.post("walletsolidity/gettransactioninfobyid", value=txid)
    tx = await node.post("walletsolidity/gettransactionbyid", value=txid)
    head = await node.post("wallet/getnowblock")
    solid = await node.post("walletsolidity/getnowblock")
    number = int(solid["block_header"]["raw_data"]["number"])
    parent = await node.post("walletsolidity/getblockbynum", num=number - 1)
    return (
        info,
        tx,
        int(head["block_header"]["raw_data"]["timestamp"]),
        int(parent["block_header"]["raw_data"].get("timestamp", 0)),
    )


async def test_a_held_back_transaction_expires_on_the_solid_chain_and_never_lands(
    node: TronNode,
) -> None:
    hot = TronKey.fresh("held back")
    await node.control("fund", address=hot.address, amount_sun=10 * TRX)
    content = BatchContent.of(
        network="tron-devnet",
        chain_id=None,
        asset="TRX",
        contract=None,
        decimals=6,
        outputs=[BatchOutput(1, TronKey.genesis(2).address, TRX)],
        fee_cap=100 * TRX,
    )
    plan = await plan_for(node, hot, content, None)
    [out] = sign_tron_batch(
        content, plan, hot_key(hot.key.secret), now_ms=int(time.time() * 1000), expiration_seconds=1
    )
    txid = out.signed.txid
    info, tx, head_ms, parent_ms = await solid_view(node, txid)
    kw = {"expiration_ms": out.expiration}
    assert (
        settle(txid, info, tx, head_ms=head_ms, solid_parent_ms=parent_ms, **kw) is Fate.REBROADCAST
    )
    await asyncio.sleep(max(0.0, out.expiration / 1000 - time.time()) + 0.05)
    await node.mine(1)
    info, tx, head_ms, parent_ms = await solid_view(node, txid)
    # past the expiration on the head, but the solid chain has not caught up: not dead yet
    assert settle(txid, info, tx, head_ms=head_ms, solid_parent_ms=parent_ms, **kw) is Fate.WAIT
    late = await node.post(
        "wallet/broadcasthex", transaction=signed_transaction_bytes(out.signed).hex()
    )
    assert late["code"] == "TRANSACTION_EXPIRATION_ERROR"  # and the node would refuse it anyway
    await node.mine(21)
    info, tx, head_ms, parent_ms = await solid_view(node, txid)
    assert settle(txid, info, tx, head_ms=head_ms, solid_parent_ms=parent_ms, **kw) is Fate.EXPIRED
    assert await node.balance(hot.address) == 10 * TRX
