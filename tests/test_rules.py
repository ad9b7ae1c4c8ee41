"""Deposit rules that do not depend on a chain (SPEC section 5), as pure decisions."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

from chaingate.domain import (
    AddressRow,
    AlertKind,
    AlertSeverity,
    DepositStatus,
    NewAlert,
    RejectReason,
    Transfer,
)
from chaingate.ledger.messages import credit_key
from chaingate.watcher.rules import decide
from harness import devnet_network

NETWORK = devnet_network("ethereum-devnet", "http://127.0.0.1:1")
OWNER = AddressRow(7, "ethereum-devnet", "u1", 0, "0xAb", "0xab")
DAY = date(2026, 11, 30)


def transfer(**changes: object) -> Transfer:
    base = Transfer(
        network=NETWORK.name, txid="0x1", position="native", to="0xab", amount=10**18,
        asset="ETH", block_number=10, block_hash="0xh",
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_good_deposit_waits_for_the_network_confirmations() -> None:
    d = decide(NETWORK, transfer(), OWNER, DAY).deposit
    assert (d.status, d.reason, d.user_id) == (DepositStatus.CONFIRMING, None, "u1")
    assert d.required_confirmations == NETWORK.confirmations


def test_large_amounts_need_more_confirmations() -> None:
    nexo = NETWORK.asset("NEXO")
    assert nexo.large_amount is not None and nexo.large_confirmations is not None
    d = decide(NETWORK, transfer(asset="NEXO", amount=nexo.large_amount), OWNER, DAY).deposit
    assert d.required_confirmations == nexo.large_confirmations > NETWORK.confirmations


def test_dust_is_recorded_as_rejected_not_dropped() -> None:
    d = decide(NETWORK, transfer(amount=NETWORK.asset("ETH").min_deposit - 1), OWNER, DAY).deposit
    assert (d.status, d.reason) == (DepositStatus.REJECTED, RejectReason.DUST.value)


def test_unconfirmed_transfers_are_only_seen() -> None:
    d = decide(NETWORK, transfer(block_number=None, block_hash=None), OWNER, DAY).deposit
    assert d.status is DepositStatus.SEEN


def test_coinbase_outputs_wait_for_maturity() -> None:
    d = decide(NETWORK, transfer(coinbase=True), OWNER, DAY).deposit
    assert d.required_confirmations == NETWORK.coinbase_maturity


def test_unlisted_token_and_unknown_address_are_rejected_with_an_alert() -> None:
    unlisted = decide(
        NETWORK, transfer(asset=None, contract="0xdead", position="log:1"), OWNER, DAY
    )
    assert unlisted.deposit.reason == RejectReason.UNLISTED_TOKEN.value
    assert unlisted.alert is not None and unlisted.alert.kind == "unlisted_token"
    stranger = decide(NETWORK, transfer(), None, DAY)
    assert stranger.deposit.reason == RejectReason.UNKNOWN_ADDRESS.value
    assert stranger.alert is not None


def test_watch_only_and_disabled_assets_credit_nothing() -> None:
    watch = dataclasses.replace(NETWORK, watch_only=True)
    assert (
        decide(watch, transfer(), OWNER, DAY).deposit.reason
        == RejectReason.WATCH_ONLY_NETWORK.value
    )
    off = dataclasses.replace(
        NETWORK,
        assets=tuple(dataclasses.replace(a, deposits_enabled=False) for a in NETWORK.assets),
    )
    decision = decide(off, transfer(), OWNER, DAY)
    assert decision.deposit.reason == RejectReason.DEPOSITS_DISABLED.value
    assert decision.alert is not None


def test_a_failed_transaction_keeps_the_adapters_reason_and_raises_no_alert() -> None:
    d = decide(NETWORK, transfer(reject_reason=RejectReason.FAILED_TX), OWNER, DAY)
    assert d.deposit.reason == "failed_tx" and d.alert is None


def test_credit_keys_change_only_when_a_reversed_deposit_is_credited_again() -> None:
    assert credit_key("n", "t", "p", 0) == "credit:n:t:p"
    assert credit_key("n", "t", "p", 1) != credit_key("n", "t", "p", 0)


def test_unlisted_tokens_alert_once_per_contract_network_and_day_at_low_severity() -> None:
    def alert(**changes: object) -> NewAlert:
        made = decide(
            NETWORK, transfer(**{"asset": None, "contract": "0xdead", **changes}), OWNER, DAY
        )
        assert made.alert is not None
        return made.alert

    first = alert(txid="0x1", position="log:0")
    assert first.severity is AlertSeverity.WARNING
    # Another transfer, another tx, another user: the same alert (stored once by its key).
    assert alert(txid="0x2", position="log:3").dedup_key == first.dedup_key
    assert alert(contract="0xbeef").dedup_key != first.dedup_key
    later = decide(NETWORK, transfer(asset=None, contract="0xdead"), OWNER, DAY + timedelta(1))
    assert later.alert is not None and later.alert.dedup_key != first.dedup_key
    watch = dataclasses.replace(NETWORK, watch_only=True)
    spam = decide(watch, transfer(asset=None, contract="0xdead"), OWNER, DAY).alert
    assert spam is not None and spam.severity is AlertSeverity.WARNING  # spam on BSC too


def test_a_listed_asset_on_a_watch_only_network_stays_critical_per_transfer() -> None:
    watch = dataclasses.replace(NETWORK, watch_only=True)
    one = decide(watch, transfer(txid="0x1"), OWNER, DAY).alert
    two = decide(watch, transfer(txid="0x2"), OWNER, DAY).alert
    assert one is not None and two is not None
    assert (one.kind, one.severity) == (AlertKind.NETWORK_MISMATCH, AlertSeverity.CRITICAL)
    assert one.dedup_key != two.dedup_key
