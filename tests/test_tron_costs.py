"""The TRON devnet charges what java-tron charges: bandwidth, energy, activation, fee_limit, expiry.

Against the session devnet (a real HTTP node in a subprocess). Each test pays from a fresh
account funded through /devnet/fund, so free bandwidth and balances start known. Sizes, fees and
error texts are checked against recorded mainnet data and java-tron's sources (tests/data/tron/).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chaingate.devnet.manager import DevnetState
from chaingate.devnet.tron_node import costs
from tron_support import TronKey, TronNode, transfer_data

DATA = Path(__file__).parent / "data" / "tron"
ERRORS = json.loads((DATA / "java_tron_broadcast_errors.json").read_text())
PRICE = 420  # the devnet's getEnergyFee
TRX = 1_000_000
GENESIS_1 = TronKey.genesis(1).address


@pytest.fixture
async def node(devnet: DevnetState) -> AsyncIterator[TronNode]:
    assert devnet.tron_url is not None
    node = TronNode(devnet.tron_url)
    await node.mine(1)  # whatever an earlier test left in the pool is not ours
    yield node
    await node.control("resources", extra_energy=0)


async def funded(node: TronNode, label: str, sun: int) -> TronKey:
    key = TronKey.fresh(label)
    await node.control("fund", address=key.address, amount_sun=sun)
    return key


async def send(node: TronNode, signed: dict[str, Any]) -> dict[str, Any]:
    """Broadcast, mine it, and answer its TransactionInfo."""
    answer = await node.broadcast(signed)
    assert answer.get("result") is True, answer
    await node.mine(1)
    return await node.info(signed["txID"])


async def pay_trx(node: TronNode, key: TronKey, to: str, sun: int) -> dict[str, Any]:
    value = {"owner_address": key.raw.hex(), "to_address": to, "amount": sun}
    return await send(node, key.sign(await node.raw("TransferContract", value)))


@pytest.fixture
async def token(node: TronNode) -> tuple[TronKey, str, str]:
    """A TRC-20 whose whole supply a fresh, TRX-funded account holds."""
    owner = await funded(node, "trc20 owner", 1_000 * TRX)
    deployed = await node.control(
        "deploy-trc20", symbol="USDT", decimals=6, owner=owner.address, supply=10**12
    )
    return owner, deployed["contract"], deployed["contract_hex"]


def test_bandwidth_size_matches_mainnet_records() -> None:
    for record in json.loads((DATA / "trongrid_transfers_bandwidth.json").read_text()):
        if record["net_fee"]:
            continue  # an activation pays a flat fee, not per byte
        raw = bytes.fromhex(record["raw_data_hex"])
        assert costs.tx_size(raw, record["signature"]) == record["net_usage"]


async def test_chain_parameters_report_the_prices(node: TronNode) -> None:
    params = {
        p["key"]: p.get("value")
        for p in (await node.post("wallet/getchainparameters"))["chainParameter"]
    }
    recorded = json.loads((DATA / "chain_parameters.json").read_text())["chainParameter"]
    assert {p["key"] for p in recorded} <= params.keys()
    assert params["getEnergyFee"] == PRICE
    assert (params["getTransactionFee"], params["getCreateAccountFee"]) == (1000, 100_000)
    assert params["getCreateNewAccountFeeInSystemContract"] == TRX


async def test_free_bandwidth_then_trx_burned_per_byte(node: TronNode) -> None:
    payer = await funded(node, "bandwidth payer", 10 * TRX)
    payee = await funded(node, "bandwidth payee", 1)
    first, second, third = [await pay_trx(node, payer, payee.address, 1) for _ in range(3)]
    # 600 free bytes a day cover two ~265-byte transfers; the third burns 1000 sun per byte
    assert "fee" not in first and "fee" not in second
    used = first["receipt"]["net_usage"] + second["receipt"]["net_usage"]
    assert 2 * 265 <= used <= 600 < used + third["receipt"]["net_fee"] // 1000
    assert third["fee"] == third["receipt"]["net_fee"] and "net_usage" not in third["receipt"]
    assert await node.balance(payer.address) == 10 * TRX - 3 - third["fee"]
    assert await node.balance(payee.address) == 1 + 3


async def test_trx_to_an_inactive_account_pays_the_activation_fees(node: TronNode) -> None:
    payer = await funded(node, "activator", 10 * TRX)
    fresh = TronKey.fresh("inactive")
    assert not await node.exists(fresh.address)
    info = await pay_trx(node, payer, fresh.address, 2 * TRX)
    assert (info["fee"], info["receipt"]) == (1_100_000, {"net_fee": 100_000})  # as mainnet
    assert await node.balance(fresh.address) == 2 * TRX
    assert await node.balance(payer.address) == 8 * TRX - 1_100_000


async def test_activation_fee_counts_in_the_balance_check(node: TronNode) -> None:
    payer = await funded(node, "short activator", 2 * TRX + 500_000)
    value = {"owner_address": payer.raw.hex(), "to_address": TronKey.fresh("x").raw.hex()}
    signed = payer.sign(await node.raw("TransferContract", {**value, "amount": 2 * TRX}))
    answer = await node.broadcast(signed)
    assert answer["code"] == "CONTRACT_VALIDATE_ERROR"
    assert (
        answer["text"]
        == ERRORS["CONTRACT_VALIDATE_ERROR_prefix"] + ERRORS["transfer_balance_not_sufficient"]
    )


async def test_unpaid_bandwidth_is_refused(node: TronNode) -> None:
    payer = await funded(node, "poor", 10)
    payee = await funded(node, "poor payee", 1)
    for _ in range(2):  # the free bytes
        await pay_trx(node, payer, payee.address, 1)
    value = {"owner_address": payer.raw.hex(), "to_address": payee.address, "amount": 1}
    answer = await node.broadcast(payer.sign(await node.raw("TransferContract", value)))
    assert (answer["code"], answer["text"]) == ("BANDWITH_ERROR", ERRORS["BANDWITH_ERROR"])


async def dry_run(node: TronNode, owner: TronKey, contract: str, to: bytes, amount: int) -> int:
    answer = await node.post(
        "wallet/triggerconstantcontract",
        owner_address=owner.raw.hex(),
        contract_address=contract,
        function_selector="transfer(address,uint256)",
        parameter=transfer_data(to, amount)[8:],
    )
    assert answer["result"] == {"result": True}
    return int(answer["energy_used"])


async def trc20(
    node: TronNode, owner: TronKey, contract: str, to: bytes, amount: int, fee_limit: int
) -> dict[str, Any]:
    value = {
        "owner_address": owner.raw.hex(),
        "contract_address": contract,
        "data": transfer_data(to, amount),
    }
    raw = await node.raw("TriggerSmartContract", value, fee_limit=fee_limit)
    return await send(node, owner.sign(raw))


async def test_trc20_burns_energy_at_the_energy_price(
    node: TronNode, token: tuple[TronKey, str, str]
) -> None:
    owner, contract, _ = token
    holder = TronKey.fresh("holder")
    before = await node.balance(owner.address)
    energy_new = await dry_run(node, owner, contract, holder.raw, 5)
    first = await trc20(node, owner, contract, holder.raw, 5, fee_limit=100 * TRX)
    energy_held = await dry_run(node, owner, contract, holder.raw, 5)
    second = await trc20(node, owner, contract, holder.raw, 5, fee_limit=100 * TRX)
    # writing a zero balance slot costs more than updating one, as on mainnet
    assert (energy_new, energy_held) == (costs.TRC20_ENERGY_NEW_HOLDER, costs.TRC20_ENERGY_HOLDER)
    for info, energy in ((first, energy_new), (second, energy_held)):
        receipt = info["receipt"]
        assert receipt["result"] == "SUCCESS"
        assert receipt["energy_usage_total"] == energy
        assert receipt["energy_fee"] == energy * PRICE
        assert info["fee"] == energy * PRICE + receipt.get("net_fee", 0)
    assert await node.balance(owner.address) == before - first["fee"] - second["fee"]


async def test_fee_limit_below_the_energy_ends_out_of_energy_and_is_charged(
    node: TronNode, token: tuple[TronKey, str, str]
) -> None:
    owner, contract, _ = token
    to = TronKey.fresh("oo").raw
    energy = await dry_run(node, owner, contract, to, 7)
    before = await node.balance(owner.address)
    fee_limit = (energy - 1) * PRICE
    info = await trc20(node, owner, contract, to, 7, fee_limit=fee_limit)
    assert (info["result"], info["receipt"]["result"]) == ("FAILED", "OUT_OF_ENERGY")
    assert info["receipt"]["energy_usage_total"] == energy - 1
    assert info["receipt"]["energy_fee"] == fee_limit
    assert await node.balance(owner.address) == before - info["fee"]
    assert "log" not in info
    assert await dry_run(node, owner, contract, to, 7) == energy  # the token did not move


async def test_extra_energy_switch_makes_the_dry_run_fall_short(
    node: TronNode, token: tuple[TronKey, str, str]
) -> None:
    owner, contract, _ = token
    to = TronKey.fresh("extra").raw
    energy = await dry_run(node, owner, contract, to, 9)
    await node.control("resources", extra_energy=10_000)
    assert await dry_run(node, owner, contract, to, 9) == energy  # the dry run does not see it
    short = await trc20(node, owner, contract, to, 9, fee_limit=(energy + 5_000) * PRICE)
    assert short["receipt"]["result"] == "OUT_OF_ENERGY"
    enough = await trc20(node, owner, contract, to, 9, fee_limit=(energy + 10_000) * PRICE)
    assert enough["receipt"]["result"] == "SUCCESS"
    assert enough["receipt"]["energy_usage_total"] == energy + 10_000


async def test_expired_and_too_distant_expirations_are_refused(node: TronNode) -> None:
    payer = await funded(node, "late", 10 * TRX)
    value = {"owner_address": payer.raw.hex(), "to_address": GENESIS_1, "amount": 1}
    await node.mine(1)
    for expiration in (-1_000, costs.MAXIMUM_TIME_UNTIL_EXPIRATION + 60_000):
        signed = payer.sign(await node.raw("TransferContract", value, expiration_ms=expiration))
        answer = await node.broadcast(signed)
        assert answer["code"] == "TRANSACTION_EXPIRATION_ERROR"
        assert answer["text"] == ERRORS["TRANSACTION_EXPIRATION_ERROR"]


async def test_a_pending_tx_is_never_mined_after_its_expiration(node: TronNode) -> None:
    payer = await funded(node, "held", 10 * TRX)
    value = {"owner_address": payer.raw.hex(), "to_address": GENESIS_1, "amount": 1}
    signed = payer.sign(await node.raw("TransferContract", value, expiration_ms=300))
    assert (await node.broadcast(signed))["result"] is True
    deadline = signed["raw_data"]["expiration"] / 1000
    await asyncio.sleep(max(0.0, deadline - time.time()) + 0.05)
    await node.mine(1)
    assert await node.info(signed["txID"]) == {}
    assert await node.balance(payer.address) == 10 * TRX
    late = await node.broadcast(signed)  # and it cannot come back
    assert late["code"] == "TRANSACTION_EXPIRATION_ERROR"


async def test_reference_block_must_be_on_the_chain(node: TronNode) -> None:
    payer = await funded(node, "tapos", 10 * TRX)
    value = {"owner_address": payer.raw.hex(), "to_address": GENESIS_1, "amount": 1}
    good = await node.reference()
    for bad in (
        {**good, "ref_block_hash": "00" * 8},
        {**good, "ref_block_bytes": "ffff"},
    ):
        raw = await node.raw("TransferContract", value, reference=bad)
        answer = await node.broadcast(payer.sign(raw))
        assert (answer["code"], answer["text"]) == ("TAPOS_ERROR", ERRORS["TAPOS_ERROR"])
    # a block a fork dropped is no reference any more
    await node.mine(3)
    dropped = await node.reference(solid=False)
    await node.control("fork", depth=1)
    await node.mine(1)
    raw = await node.raw("TransferContract", value, reference=dropped)
    assert (await node.broadcast(payer.sign(raw)))["code"] == "TAPOS_ERROR"
    raw = await node.raw("TransferContract", value, reference=good)
    assert (await node.broadcast(payer.sign(raw)))["result"] is True
