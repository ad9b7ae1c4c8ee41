"""Deposit rules (SPEC section 5) that do not depend on the chain: what a Transfer becomes.

The adapter has already decided what only the chain can tell (failed transaction, unlisted
contract, missing event); here the registry decides the rest (watch-only network, deposits
disabled, dust, confirmations). Pure functions over domain types: no I/O, no clock (the caller
passes the day), no store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from chaingate.domain import (
    AddressRow,
    AlertKind,
    AlertSeverity,
    DepositInput,
    DepositStatus,
    Network,
    NewAlert,
    RejectReason,
    Transfer,
)

# Reasons that mean "money reached us over a path we do not credit": operations must know.
MISMATCH_REASONS = frozenset(
    {
        RejectReason.UNLISTED_TOKEN,
        RejectReason.WATCH_ONLY_NETWORK,
        RejectReason.DEPOSITS_DISABLED,
        RejectReason.UNKNOWN_ADDRESS,
    }
)


@dataclass(frozen=True, slots=True)
class Decision:
    deposit: DepositInput
    alert: NewAlert | None


def decide(network: Network, transfer: Transfer, owner: AddressRow | None, day: date) -> Decision:
    """What ``transfer`` becomes; ``day`` (UTC) groups the alerts of unlisted contracts."""
    reason = _reject_reason(network, transfer, owner)
    asset = network.asset(transfer.asset) if transfer.asset is not None else None
    required = 0
    if asset is not None:
        required = asset.required_confirmations(transfer.amount, network.confirmations)
        if transfer.coinbase:
            required = max(required, network.coinbase_maturity)
    if reason is not None:
        status = DepositStatus.REJECTED
    elif transfer.block_number is None:
        status = DepositStatus.SEEN
    else:
        status = DepositStatus.CONFIRMING
    deposit = DepositInput(
        network=network.name,
        txid=transfer.txid,
        position=transfer.position,
        to_key=transfer.to,
        amount=transfer.amount,
        status=status,
        asset=transfer.asset,
        contract=transfer.contract,
        decimals=asset.decimals if asset is not None else None,
        address_id=owner.id if owner is not None else None,
        user_id=owner.user_id if owner is not None else None,
        block_number=transfer.block_number,
        block_hash=transfer.block_hash,
        reason=reason.value if reason is not None else None,
        required_confirmations=required,
        coinbase=transfer.coinbase,
    )
    return Decision(deposit, _mismatch_alert(network, transfer, owner, reason, day))


def _reject_reason(
    network: Network, transfer: Transfer, owner: AddressRow | None
) -> RejectReason | None:
    if transfer.reject_reason is not None:
        return transfer.reject_reason
    if owner is None:
        return RejectReason.UNKNOWN_ADDRESS
    if transfer.asset is None:
        return RejectReason.UNLISTED_TOKEN
    if network.watch_only:
        return RejectReason.WATCH_ONLY_NETWORK
    asset = network.asset(transfer.asset)
    if not asset.deposits_enabled:
        return RejectReason.DEPOSITS_DISABLED
    if transfer.amount < asset.min_deposit:
        return RejectReason.DUST
    return None


def _mismatch_alert(
    network: Network,
    transfer: Transfer,
    owner: AddressRow | None,
    reason: RejectReason | None,
    day: date,
) -> NewAlert | None:
    if reason not in MISMATCH_REASONS or transfer.block_number is None:
        return None
    if reason is RejectReason.UNLISTED_TOKEN:
        return _unlisted_alert(network, transfer, owner, day)
    return NewAlert(
        kind=AlertKind.NETWORK_MISMATCH,
        # A listed asset over a watch-only network is the classic wrong-network case.
        severity=AlertSeverity.CRITICAL if network.watch_only else AlertSeverity.WARNING,
        message=(
            f"{transfer.asset} arrived at a deposit address on {network.name} and was not "
            f"credited ({reason})"
        ),
        dedup_key=f"deposit:{network.name}:{transfer.txid}:{transfer.position}",
        network=network.name,
        asset=transfer.asset,
        amount=transfer.amount,
        txid=transfer.txid,
        user_id=owner.user_id if owner is not None else None,
        details={
            "reason": reason.value if reason else None,
            "contract": transfer.contract,
            "address_network": owner.network if owner is not None else None,
            "block_number": transfer.block_number,
        },
    )


def _unlisted_alert(
    network: Network, transfer: Transfer, owner: AddressRow | None, day: date
) -> NewAlert:
    """Spam and address-poisoning tokens arrive by the thousand: one low-severity alert per
    contract, network and day (the first transfer's facts), every transfer counted in metrics."""
    contract = transfer.contract or "unknown"
    return NewAlert(
        kind=AlertKind.UNLISTED_TOKEN,
        severity=AlertSeverity.WARNING,
        message=(
            f"unlisted token {contract} arrived at a deposit address on {network.name} and was "
            f"not credited; further transfers of it today are counted, not alerted"
        ),
        dedup_key=f"unlisted_token:{network.name}:{contract}:{day.isoformat()}",
        network=network.name,
        amount=transfer.amount,
        txid=transfer.txid,
        user_id=owner.user_id if owner is not None else None,
        details={
            "reason": RejectReason.UNLISTED_TOKEN.value,
            "contract": contract,
            "day": day.isoformat(),
            "position": transfer.position,
            "address_network": owner.network if owner is not None else None,
            "block_number": transfer.block_number,
        },
    )
