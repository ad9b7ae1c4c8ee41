"""TRON transactions built offline (chains/tron/txbuilder.py) and signed by the signer's code
(signer/tron.py), then judged by the TRON devnet: java-tron's txID, signature and TaPoS rules."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from chaingate.chains.tron import txbuilder as tb
from chaingate.devnet.manager import DevnetState
from chaingate.errors import FeeCapError, SignerError, ValidationError
from chaingate.signer.keystore import KeyRing, hot_key
from chaingate.signer.tron import sign_tron
from tron_support import TronKey, TronNode

TRX = 1_000_000
PRICE = 420


@pytest.fixture
async def node(devnet: DevnetState) -> AsyncIterator[TronNode]:
    assert devnet.tron_url is not None
    node = TronNode(devnet.tron_url)
    await node.mine(20)  # the solidified head is a real block, not genesis
    yield node


async def solid_reference(node: TronNode) -> tb.Reference:
    block = await node.post("walletsolidity/getnowblock")
    header = block["block_header"]["raw_data"]
    return tb.Reference(
        int(header.get("number", 0)), block["blockID"], int(header.get("timestamp", 0))
    )


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_offline_trx_and_trc20_transfers_are_accepted_and_mined(node: TronNode) -> None:
    hot = TronKey.fresh("hot wallet")
    await node.control("fund", address=hot.address, amount_sun=100 * TRX)
    usdt = await node.control(
        "deploy-trc20", symbol="USDT", decimals=6, owner=hot.address, supply=10**12
    )
    key = hot_key(hot.key.secret)
    reference = await solid_reference(node)
    payee = TronKey.fresh("payee").address
    energy = int(
        (
            await node.post(
                "wallet/triggerconstantcontract",
                owner_address=hot.address,
                contract_address=usdt["contract"],
                data=tb.trc20_transfer_data(payee, 5 * TRX),
                visible=True,
            )
        )["energy_used"]
    )
    fee_limit = tb.fee_limit_for(energy, PRICE, fee_cap=100 * TRX)
    assert fee_limit == -(-energy * PRICE * 130 // 100)
    built = now_ms()
    txs = [
        tb.TronTransfer(hot.address, payee, 3 * TRX, None, 0, reference, built, built + 60_000),
        tb.TronTransfer(
            hot.address,
            payee,
            5 * TRX,
            usdt["contract"],
            fee_limit,
            reference,
            built,
            built + 60_000,
        ),
    ]
    for tx in txs:
        made = tb.build(tx)
        signed = sign_tron(made.raw_bytes, key)
        assert signed.txid == made.txid and signed.sender == hot.address
        answer = await node.broadcast(
            tb.broadcast_body(made.raw_data, signed.raw_bytes, signed.signature)
        )
        assert answer == {"result": True, "txid": made.txid}
    await node.mine(1)
    trx_info, usdt_info = [await node.info(tb.build(tx).txid) for tx in txs]
    assert trx_info["fee"] == 1_100_000  # payee was new: activation
    assert usdt_info["receipt"]["result"] == "SUCCESS"
    assert usdt_info["receipt"]["energy_fee"] == energy * PRICE <= fee_limit
    assert await node.balance(payee) == 3 * TRX
    assert await node.balance(hot.address) == 97 * TRX - trx_info["fee"] - usdt_info["fee"]


async def test_a_changed_byte_or_another_key_is_refused(node: TronNode) -> None:
    hot = TronKey.fresh("hot 2")
    await node.control("fund", address=hot.address, amount_sun=10 * TRX)
    reference = await solid_reference(node)
    built = now_ms()
    tx = tb.TronTransfer(
        hot.address, TronKey.fresh("p").address, TRX, None, 0, reference, built, built + 60_000
    )
    made = tb.build(tx)
    with pytest.raises(SignerError, match="owner"):
        sign_tron(made.raw_bytes, hot_key(TronKey.fresh("other").key.secret))
    signed = sign_tron(made.raw_bytes, hot_key(hot.key.secret))
    # the amount changed after signing: the devnet recomputes the txID and the signature fails
    tampered = dict(made.raw_data)
    tampered["contract"] = [
        {
            **made.raw_data["contract"][0],
            "parameter": {
                **made.raw_data["contract"][0]["parameter"],
                "value": {**made.raw_data["contract"][0]["parameter"]["value"], "amount": 2 * TRX},
            },
        }
    ]
    answer = await node.broadcast(
        {**tb.broadcast_body(tampered, signed.raw_bytes, signed.signature)}
    )
    assert answer["code"] == "SIGERROR"


def test_fee_limit_is_held_under_the_fee_cap() -> None:
    energy = 29_631
    needed = tb.fee_limit_for(energy, PRICE, fee_cap=100 * TRX)
    bandwidth = tb.TRC20_TX_BYTES * 1_000
    assert tb.fee_limit_for(energy, PRICE, fee_cap=needed + bandwidth) == needed
    with pytest.raises(FeeCapError):
        tb.fee_limit_for(energy, PRICE, fee_cap=needed + bandwidth - 1)
    assert tb.fee_limit_for(energy, PRICE, fee_cap=100 * TRX, margin_percent=0) == energy * PRICE


def test_reference_and_expiration_are_checked() -> None:
    block_id = f"{1234:016x}" + "ab" * 24
    ref = tb.Reference(1234, block_id, 1)
    assert (ref.ref_block_bytes, ref.ref_block_hash) == ("04d2", "ab" * 8)
    with pytest.raises(ValidationError):
        tb.Reference(1235, block_id, 1)
    with pytest.raises(ValidationError):
        tb.expiration_for(0, tb.MAX_EXPIRATION_SECONDS + 1)
    to = TronKey.fresh("to").address
    with pytest.raises(ValidationError):
        tb.TronTransfer(to, to, 1, None, 0, ref, 10, 10)  # expired at build time
    with pytest.raises(ValidationError):
        tb.TronTransfer(to, to, 1, None, 5, ref, 10, 20)  # fee_limit on a TRX transfer


def test_the_keyring_finds_a_hot_key_by_its_t_address() -> None:
    tron = TronKey.fresh("ring")
    key = hot_key(tron.key.secret)
    ring = KeyRing([key])
    assert ring.key_for(tron.address) is key
    assert ring.key_for(key.address) is key  # the EVM spelling of the same key still works
