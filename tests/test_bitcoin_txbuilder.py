"""Batch transactions: coin selection, change, fee from the virtual size, dust, RBF."""

from __future__ import annotations

from decimal import Decimal
from typing import cast

import pytest

from chaingate.chains.base import RpcClient
from chaingate.chains.bitcoin.coinselect import Coin, InsufficientFunds, select_coins
from chaingate.chains.bitcoin.rpc import BitcoinRpc, sat_per_kvb
from chaingate.chains.bitcoin.txbuilder import (
    RBF_SEQUENCE,
    FeeCapExceeded,
    TxOut,
    build_batch,
    dust_threshold,
    estimate_vsize,
    fee_for,
    replacement,
)
from chaingate.domain.signing_plan import BitcoinPlan, PlannedCoin
from chaingate.errors import ChainDataError, ValidationError

P2WPKH = bytes.fromhex("0014" + "aa" * 20)
P2TR = bytes.fromhex("5120" + "bb" * 32)
P2WSH = bytes.fromhex("0020" + "cc" * 32)
P2SH = bytes.fromhex("a914" + "dd" * 20 + "87")
P2PKH = bytes.fromhex("76a914" + "ee" * 20 + "88ac")
CHANGE = bytes.fromhex("0014" + "ff" * 20)


def coin(amount: int, n: int, *, confirmed: bool = True, own_change: bool = False) -> Coin:
    return Coin(
        txid=f"{n:064x}",
        vout=0,
        amount=amount,
        script=bytes.fromhex("0014" + "11" * 20),
        chain=1 if own_change else 0,
        index=n,
        confirmed=confirmed,
        own_change=own_change,
    )


def test_dust_limits_per_script_type_match_bitcoin_core() -> None:
    assert dust_threshold(P2PKH) == 546
    assert dust_threshold(P2SH) == 540
    assert dust_threshold(P2WPKH) == 294
    assert dust_threshold(P2WSH) == 330
    assert dust_threshold(P2TR) == 330


def test_a_dust_output_is_refused() -> None:
    with pytest.raises(ValidationError, match="dust"):
        build_batch(
            [TxOut(545, P2PKH)],
            [coin(100_000, 1)],
            change_script=CHANGE,
            fee_rate=1000,
            fee_cap=10_000,
        )


def test_one_transaction_pays_every_output_in_order_with_change_last() -> None:
    payments = [
        TxOut(10_000 * (i + 1), s) for i, s in enumerate([P2WPKH, P2TR, P2SH, P2PKH, P2WSH])
    ]
    coins = [coin(400_000, 1), coin(30_000, 2), coin(90_000, 3)]
    batch = build_batch(payments, coins, change_script=CHANGE, fee_rate=5_000, fee_cap=50_000)
    assert list(batch.tx.outputs[:5]) == payments
    assert batch.change is not None and batch.change.script == CHANGE
    assert batch.change_index == 5
    assert all(i.sequence == RBF_SEQUENCE for i in batch.tx.inputs)
    assert sum(c.amount for c in batch.coins) == sum(o.amount for o in batch.tx.outputs) + batch.fee
    assert batch.fee == fee_for(batch.vsize, 5_000)
    assert batch.vsize == estimate_vsize(len(batch.coins), [o.script for o in batch.tx.outputs])
    assert len(batch.coins) == 1  # one large coin, not three


def test_branch_and_bound_finds_an_exact_match_without_change() -> None:
    # 60_000 + 40_000 pays 99_000 plus the fee with nothing worth a change output left over
    coins = [coin(150_000, 1), coin(60_000, 2), coin(39_200, 3), coin(7_000, 4)]
    batch = build_batch(
        [TxOut(99_000, P2WPKH)], coins, change_script=CHANGE, fee_rate=1_000, fee_cap=10_000
    )
    assert batch.change is None
    assert sorted(c.amount for c in batch.coins) == [39_200, 60_000]
    assert batch.fee < 1_000


def test_fallback_selection_when_no_exact_match() -> None:
    selection = select_coins(
        [coin(50_000, 1), coin(50_000, 2), coin(50_000, 3)],
        target=120_000,
        input_fee=68,
        change_fee=31,
        change_spend_fee=68,
        min_change=294,
    )
    assert selection.change and len(selection.coins) == 3


def test_unconfirmed_coins_are_spent_only_when_they_are_our_change() -> None:
    foreign = coin(500_000, 1, confirmed=False)
    with pytest.raises(InsufficientFunds):
        build_batch(
            [TxOut(100_000, P2WPKH)],
            [foreign],
            change_script=CHANGE,
            fee_rate=1_000,
            fee_cap=10_000,
        )
    ours = coin(500_000, 2, confirmed=False, own_change=True)
    batch = build_batch(
        [TxOut(100_000, P2WPKH)],
        [foreign, ours],
        change_script=CHANGE,
        fee_rate=1_000,
        fee_cap=10_000,
    )
    assert batch.coins == (ours,)


def test_the_fee_cap_is_never_passed() -> None:
    with pytest.raises(FeeCapExceeded):
        build_batch(
            [TxOut(100_000, P2WPKH)],
            [coin(500_000, 1)],
            change_script=CHANGE,
            fee_rate=100_000,
            fee_cap=10_000,
        )


def test_replacement_keeps_outputs_and_inputs_and_pays_more() -> None:
    coins = [coin(120_000, 1), coin(80_000, 2)]
    original = build_batch(
        [TxOut(100_000, P2WPKH), TxOut(5_000, P2TR)],
        coins,
        change_script=CHANGE,
        fee_rate=1_000,
        fee_cap=20_000,
    )
    bumped = replacement(original, coins, change_script=CHANGE, fee_rate=1_000, fee_cap=20_000)
    assert bumped.tx.outputs[:2] == original.tx.outputs[:2]
    assert set(original.tx.inputs) <= set(bumped.tx.inputs)
    assert bumped.fee_rate > original.fee_rate
    assert bumped.fee >= original.fee + fee_for(bumped.vsize, 1_000)
    with pytest.raises(FeeCapExceeded):
        replacement(
            original, coins, change_script=CHANGE, fee_rate=50_000, fee_cap=original.fee + 10
        )


def test_thousand_coin_wallet_does_not_hit_the_recursion_limit() -> None:
    coins = [coin(1_000 + i, i) for i in range(3_000)]
    batch = build_batch(
        [TxOut(2_500_000, P2WPKH)], coins, change_script=CHANGE, fee_rate=1_000, fee_cap=1_000_000
    )
    assert sum(c.amount for c in batch.coins) >= 2_500_000


def test_the_fee_rate_is_the_estimate_held_within_the_registry_floor_and_cap() -> None:
    from chaingate.withdrawals.bitcoin_planner import clamp_fee_rate
    from harness import devnet_network

    network = devnet_network("bitcoin-devnet", "http://127.0.0.1:1")
    assert (network.min_fee_rate, network.max_fee_rate) == (1_000, 50_000)
    assert clamp_fee_rate(network, None) == 1_000  # litecoind regtest: no estimate
    assert clamp_fee_rate(network, 300) == 1_000
    assert clamp_fee_rate(network, 12_345) == 12_345
    assert clamp_fee_rate(network, 900_000) == 50_000


class _NetworkInfo:
    """A node whose ``getnetworkinfo`` answers ``info`` (the only call made)."""

    def __init__(self, info: object) -> None:
        self.info = info

    async def request(self, method: str, params: object, check: object = None) -> object:
        assert method == "getnetworkinfo"
        return self.info


@pytest.mark.parametrize(
    ("incrementalfee", "sat_per_kvb"),
    [
        (Decimal("0.00001000"), 1_000),  # Bitcoin Core's default, 1 sat/vB
        (Decimal("0.00005"), 5_000),
        (0.0001, 10_000),  # a float from a JSON decoder: read through its text, exactly
        ("0.00000001", 1),
        (None, None),  # not said: the caller falls back to 1 sat/vB
        (Decimal(0), None),  # no minimum increment: likewise
    ],
)
async def test_the_nodes_incremental_relay_fee_in_btc_per_kvb_becomes_sat_per_kvb(
    incrementalfee: object, sat_per_kvb: int | None
) -> None:
    info = {} if incrementalfee is None else {"incrementalfee": incrementalfee}
    rpc = BitcoinRpc(cast(RpcClient, _NetworkInfo(info)))
    assert await rpc.incremental_fee_rate() == sat_per_kvb


@pytest.mark.parametrize("bad", [Decimal("0.000000001"), -0.00001, "lots", True, [1]])
def test_a_strange_fee_rate_from_the_node_is_refused(bad: object) -> None:
    with pytest.raises(ChainDataError):
        sat_per_kvb(bad, "getnetworkinfo incrementalfee")


def test_a_replacement_beats_the_original_by_the_nodes_incremental_fee() -> None:
    coins = [coin(500_000, 1)]
    original = build_batch(
        [TxOut(100_000, P2WPKH)], coins, change_script=CHANGE, fee_rate=1_000, fee_cap=50_000
    )
    bumped = replacement(
        original,
        coins,
        change_script=CHANGE,
        fee_rate=1_000,
        fee_cap=50_000,
        incremental_rate=5_000,
    )
    assert bumped.fee_rate >= original.fee_rate + 5_000
    assert bumped.fee >= original.fee + fee_for(bumped.vsize, 5_000)
    # the signer learns the rate from the plan, and an older plan without it still reads
    plan = BitcoinPlan((PlannedCoin("ab" * 32, 0, 500_000, 0, 1),), 6_000, 0, 5_000)
    assert BitcoinPlan.from_json(plan.to_json()) == plan
    older = {k: v for k, v in plan.to_json().items() if k != "incremental_rate"}
    assert BitcoinPlan.from_json(older).incremental_rate is None


def test_a_replacement_of_a_child_pays_for_its_unconfirmed_parent() -> None:
    coins = [coin(500_000, 1, confirmed=False, own_change=True), coin(300_000, 2)]
    child = build_batch(
        [TxOut(100_000, P2WPKH)], coins[:1], change_script=CHANGE, fee_rate=1_000, fee_cap=90_000
    )
    parent_fee, parent_vsize = 1_000, 1_000  # a big parent at 1 sat/vB
    bumped = replacement(
        child,
        coins,
        change_script=CHANGE,
        fee_rate=1_000,
        fee_cap=90_000,
        parents=(parent_fee, parent_vsize),
    )
    # the package of parent and replacement beats the old package's rate by 1 sat/vB ...
    old_rate = (parent_fee + child.fee) * 1000 // (parent_vsize + child.vsize)
    assert parent_fee + bumped.fee >= fee_for(parent_vsize + bumped.vsize, old_rate + 1_000)
    # ... so the child alone pays far more than its own BIP125 minimum, and not wildly more
    assert bumped.fee >= child.fee + fee_for(bumped.vsize, 1_000)
    assert bumped.fee > 5 * child.fee
    assert parent_fee + bumped.fee <= fee_for(parent_vsize + bumped.vsize, old_rate + 2_000)
    assert bumped.tx.outputs[0] == child.tx.outputs[0]
    without = replacement(child, coins, change_script=CHANGE, fee_rate=1_000, fee_cap=90_000)
    assert without.fee < bumped.fee
    with pytest.raises(FeeCapExceeded):  # the package is paid within the child's cap, or not
        replacement(
            child,
            coins,
            change_script=CHANGE,
            fee_rate=1_000,
            fee_cap=child.fee + 500,
            parents=(parent_fee, parent_vsize),
        )
