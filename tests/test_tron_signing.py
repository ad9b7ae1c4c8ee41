"""A TRON batch signed by the signer's code (signer/tron.py) from a TronPlan read off the devnet,
its stored bytes broadcast with /wallet/broadcasthex: amounts arrive exactly, the hot wallet pays
the amounts plus the fees the devnet charged; the resource check and the fee cap hold; bytes
are never accepted twice, nor after their expiration."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import pytest

from chaingate.chains.tron import txbuilder as tb
from chaingate.chains.tron.addresses import any_to_raw
from chaingate.chains.tron.proto import encode_raw_data
from chaingate.devnet.manager import DevnetState
from chaingate.domain.batch_content import BatchContent, BatchOutput
from chaingate.errors import FeeCapError
from chaingate.signer.checks import Refused
from chaingate.signer.keystore import hot_key
from chaingate.signer.tron import (
    HotWalletShort,
    check_bytes,
    sign_tron_batch,
    signed_transaction_bytes,
)
from tron_support import TronKey, TronNode, plan_for

TRX = 1_000_000
CAP = 100 * TRX


@pytest.fixture
async def node(devnet: DevnetState) -> AsyncIterator[TronNode]:
    assert devnet.tron_url is not None
    node = TronNode(devnet.tron_url)
    await node.mine(20)
    yield node


def content_of(asset: str, contract: str | None, outputs: list[tuple[str, int]]) -> BatchContent:
    return BatchContent.of(
        network="tron-devnet",
        chain_id=None,
        asset=asset,
        contract=contract,
        decimals=6,
        outputs=[BatchOutput(i + 1, to, amount) for i, (to, amount) in enumerate(outputs)],
        fee_cap=CAP,
    )


async def broadcast_stored(node: TronNode, stored: bytes) -> dict[str, object]:
    return dict(await node.post("wallet/broadcasthex", transaction=stored.hex()))


async def test_a_trx_and_a_usdt_batch_pay_exactly_and_fees_are_what_the_chain_charged(
    node: TronNode,
) -> None:
    hot = TronKey.fresh("hot signer")
    await node.control("fund", address=hot.address, amount_sun=500 * TRX)
    usdt = await node.control(
        "deploy-trc20", symbol="USDT", decimals=6, owner=hot.address, supply=10**12
    )
    await node.mine(20)
    known = TronKey.fresh("known")
    await node.control("fund", address=known.address, amount_sun=1)
    fresh = TronKey.fresh("never seen")
    key = hot_key(hot.key.secret)
    trx_batch = content_of("TRX", None, [(known.address, 7 * TRX), (fresh.address, 3 * TRX)])
    usdt_batch = content_of("USDT", usdt["contract"], [(known.address, 11), (fresh.address, 13)])
    before = await node.balance(hot.address)
    signed = []
    for content, contract in ((trx_batch, None), (usdt_batch, usdt["contract"])):
        plan = await plan_for(node, hot, content, contract)
        outputs = sign_tron_batch(
            content, plan, key, now_ms=int(time.time() * 1000), expiration_seconds=60
        )
        assert {o.reference.block_id for o in outputs} == {plan.ref_block_id}
        signed += outputs
        for output in outputs:
            stored = signed_transaction_bytes(output.signed)
            answer = await broadcast_stored(node, stored)
            assert answer["result"] is True and answer["txid"] == output.signed.txid
            again = await broadcast_stored(node, stored)  # the same bytes again: refused
            assert again["code"] == "DUP_TRANSACTION_ERROR"
        await node.mine(1)
    infos = [await node.info(o.signed.txid) for o in signed]
    assert [i.get("receipt", {}).get("result", "SUCCESS") for i in infos] == ["SUCCESS"] * 4
    fees = sum(int(i.get("fee", 0)) for i in infos)
    assert infos[1]["fee"] == 1_100_000  # the new account's activation
    assert all(int(i.get("fee", 0)) <= o.worst_case_fee for i, o in zip(infos, signed, strict=True))
    assert await node.balance(hot.address) == before - 10 * TRX - fees
    assert await node.balance(known.address) == 1 + 7 * TRX
    assert await node.balance(fresh.address) == 3 * TRX
    for holder, amount in ((known, 11), (fresh, 13)):
        answer = await node.post(
            "wallet/triggerconstantcontract",
            owner_address=holder.address,
            contract_address=usdt["contract"],
            function_selector="balanceOf(address)",
            parameter=any_to_raw(holder.address)[1:].hex().rjust(64, "0"),
            visible=True,
        )
        assert int(answer["constant_result"][0], 16) == amount


async def test_nothing_is_signed_when_the_hot_wallet_cannot_pay(node: TronNode) -> None:
    hot = TronKey.fresh("poor hot")
    await node.control("fund", address=hot.address, amount_sun=5 * TRX)
    fresh = TronKey.fresh("new")
    content = content_of("TRX", None, [(fresh.address, 4 * TRX)])
    plan = await plan_for(node, hot, content, None)
    # 4 TRX + 1.1 TRX activation > 5 TRX
    with pytest.raises(HotWalletShort, match="may need 5100000"):
        sign_tron_batch(content, plan, hot_key(hot.key.secret), now_ms=1, expiration_seconds=60)


async def test_a_fee_limit_over_the_cap_is_not_built(node: TronNode) -> None:
    hot = TronKey.fresh("capped")
    await node.control("fund", address=hot.address, amount_sun=50 * TRX)
    usdt = await node.control(
        "deploy-trc20", symbol="USDT", decimals=6, owner=hot.address, supply=10**9
    )
    content = content_of("USDT", usdt["contract"], [(TronKey.fresh("x").address, 5)])
    small = BatchContent.of(
        network=content.network,
        chain_id=None,
        asset="USDT",
        contract=usdt["contract"],
        decimals=6,
        outputs=content.outputs,
        fee_cap=TRX,  # 29 631 energy x 420 sun = 12.4 TRX
    )
    plan = await plan_for(node, hot, small, usdt["contract"])
    with pytest.raises(FeeCapError):
        sign_tron_batch(small, plan, hot_key(hot.key.secret), now_ms=1, expiration_seconds=60)


async def test_signed_bytes_held_past_their_expiration_are_refused(node: TronNode) -> None:
    hot = TronKey.fresh("late hot")
    await node.control("fund", address=hot.address, amount_sun=50 * TRX)
    content = content_of("TRX", None, [(TronKey.genesis(1).address, TRX)])
    plan = await plan_for(node, hot, content, None)
    [output] = sign_tron_batch(
        content, plan, hot_key(hot.key.secret), now_ms=int(time.time() * 1000), expiration_seconds=1
    )
    await asyncio.sleep(max(0.0, output.expiration / 1000 - time.time()) + 0.05)
    await node.mine(1)  # the head passes the expiration
    answer = await broadcast_stored(node, signed_transaction_bytes(output.signed))
    assert answer["code"] == "TRANSACTION_EXPIRATION_ERROR"
    await node.mine(1)
    assert await node.info(output.signed.txid) == {}


OWNER, PAYEE = TronKey.genesis(1), TronKey.genesis(2)
USDT = "TAeZ9H8GSk8HggrZ1yGPM3sgLLteD3JDWd"


def _tampered(edit: str) -> tuple[bytes, BatchContent, tb.Reference, int]:
    """Bytes built for an approved USDT output of OWNER, then changed as ``edit`` says."""
    content = content_of("USDT", USDT, [(PAYEE.address, 5 * TRX)])
    reference = tb.Reference(10, "000000000000000a" + "ab" * 24, 1_700_000_000_000)
    now = int(time.time() * 1000)
    tx = tb.TronTransfer(OWNER.address, PAYEE.address, 5 * TRX, USDT, 30 * TRX, reference,
                         now, now + 60_000)  # fmt: skip
    raw = tb.raw_data(tx)
    value = raw["contract"][0]["parameter"]["value"]
    if edit == "amount":
        value["data"] = tb.trc20_transfer_data(PAYEE.address, 5 * TRX + 1)
    elif edit == "destination":
        value["data"] = tb.trc20_transfer_data(TronKey.genesis(3).address, 5 * TRX)
    elif edit == "token":
        value["contract_address"] = any_to_raw(TronKey.genesis(3).address).hex()
    elif edit == "call_value":
        value["call_value"] = 1
    elif edit == "owner":
        value["owner_address"] = any_to_raw(TronKey.genesis(3).address).hex()
    elif edit == "fee_limit":
        raw["fee_limit"] = CAP + 1
    elif edit == "expiration":
        raw["expiration"] += 1
    elif edit == "reference":
        raw["ref_block_hash"] = "00" * 8
    elif edit == "trx_instead":
        raw = tb.raw_data(dataclasses.replace(tx, contract=None, fee_limit=0))
    raw_bytes = encode_raw_data(raw)
    if edit == "extra_field":
        raw_bytes += bytes([0x52, 1, 0x78])  # field 10 (data, a memo): one byte
    return raw_bytes, content, reference, tx.expiration


def test_the_bytes_of_the_approved_output_pass_the_read_back() -> None:
    raw_bytes, content, reference, expiration = _tampered("none")
    check_bytes(raw_bytes, content, content.outputs[0], OWNER.address, reference, expiration)


@pytest.mark.parametrize(
    "edit",
    ["amount", "destination", "token", "call_value", "owner", "fee_limit", "expiration",
     "reference", "trx_instead", "extra_field"],
)  # fmt: skip
def test_bytes_that_say_anything_else_are_refused(edit: str) -> None:
    """``check_bytes`` (signer/tron.py) reads back what is about to be signed: any difference
    from the approved output, or a field chaingate does not write, refuses the job."""
    raw_bytes, content, reference, expiration = _tampered(edit)
    with pytest.raises(Refused) as refused:
        check_bytes(raw_bytes, content, content.outputs[0], OWNER.address, reference, expiration)
    assert refused.value.reason == "bytes_mismatch"
