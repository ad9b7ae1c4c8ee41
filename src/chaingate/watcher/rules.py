"""Deposit rules (SPEC section 5) that do not depend on the chain: what a Transfer becomes.

The adapter has already decided what only the chain can tell (failed transaction, unlisted
contract, missing event); here the registry decides the rest (watch-only network, deposits
disabled, dust, confirmations).
"""

from __future__ import annotations

from dataclasses import dataclass

from chaingate.domain import DepositStatus, Network, RejectReason, Transfer
from chaingate.store.addresses import AddressRow
from chaingate.store.alerts import NewAlert
from chaingate.store.deposits import DepositInput

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


def decide(network: Network, transfer: Transfer, owner: AddressRow | None) -> Decision:
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
    return Decision(deposit, _mismatch_alert(network, transfer, owner, reason))


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
    network: Network, transfer: Transfer, owner: AddressRow | None, reason: RejectReason | None
) -> NewAlert | None:
    if reason not in MISMATCH_REASONS or transfer.block_number is None:
        return None
    what = transfer.asset or f"unlisted token {transfer.contract}"
    return NewAlert(
        kind="network_mismatch",
        severity="critical" if network.watch_only else "warning",
        message=(
            f"{what} arrived at a deposit address on {network.name} and was not credited "
            f"({reason.value if reason else ''})"
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
