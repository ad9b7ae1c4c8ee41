"""What the signer checks itself before it signs a batch (SPEC section 7). Pure: no I/O.

The database is not trusted: a row may have been edited or inserted by someone who is not the
API. So the signer
- checks the maker's seal of the batch and recomputes the content hash from the very outputs it
  is about to sign (``batch_outputs``) and the batch's network, asset and fee cap;
- checks that each withdrawal row still says what its output says (an edit after approval of
  either table is refused, whichever one was edited);
- checks the registry (its own copy, not the database) for the chain id, the contract and the
  decimals, so a batch cannot send another token than the one its asset names;
- counts the quorum of DISTINCT principals with a valid seal over this batch and this hash,
  never the maker (``domain.approvals.check_quorum``; the seal key is never in the database);
- enforces its own per-asset limits: per transaction and per rolling day.

Any failure raises ``SignerRefusedError`` with a ``reason`` code; the service parks the job with
a critical alert and signs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from chaingate.domain import Network
from chaingate.domain.approvals import Act, Approval, check_quorum, verify_seal
from chaingate.domain.batch_content import BatchContent, BatchOutput, content_hash
from chaingate.errors import SignerRefusedError, ValidationError


class Refused(SignerRefusedError):
    """Raised when a batch fails one of the signer's own checks; ``reason`` names which."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class BatchRecord:
    id: int
    network: str
    asset: str
    chain_id: int | None
    contract: str | None
    decimals: int
    fee_cap: int
    content_hash: str
    content_version: int
    maker: str
    made_at: datetime
    maker_seal: str
    status: str


@dataclass(frozen=True, slots=True)
class WithdrawalRecord:
    id: int
    network: str
    asset: str
    destination: str
    amount: int
    batch_id: int | None
    status: str


@dataclass(frozen=True, slots=True)
class SignerLimit:
    """The signer's own ceiling for one asset, in base units."""

    per_transaction: int
    per_day: int


def verify_batch(
    batch: BatchRecord,
    outputs: Sequence[BatchOutput],
    withdrawals: Mapping[int, WithdrawalRecord],
    approvals: Sequence[Approval],
    *,
    network: Network,
    seal_key: bytes,
    quorum: int,
) -> BatchContent:
    """The content to sign, once every check passed; ``Refused`` otherwise."""
    if not verify_seal(
        seal_key,
        Act.MAKE,
        batch.id,
        batch.content_hash,
        batch.maker,
        batch.made_at,
        batch.maker_seal,
    ):
        raise Refused("maker_seal", f"batch {batch.id}: the maker's seal does not verify")
    _check_registry(batch, network)
    try:
        content = BatchContent.of(
            network=batch.network,
            chain_id=batch.chain_id,
            asset=batch.asset,
            contract=batch.contract,
            decimals=batch.decimals,
            outputs=outputs,
            fee_cap=batch.fee_cap,
        )
        recomputed = content_hash(content, batch.content_version)
    except ValidationError as exc:
        raise Refused("content_invalid", f"batch {batch.id}: {exc}") from None
    if recomputed != batch.content_hash:
        raise Refused(
            "content_hash",
            f"batch {batch.id}: its outputs or terms changed after approval "
            "(the recomputed content hash differs)",
        )
    _check_withdrawals(batch, content.outputs, withdrawals)
    result = check_quorum(
        approvals,
        key=seal_key,
        batch_id=batch.id,
        content_hash=recomputed,
        maker=batch.maker,
        quorum=quorum,
    )
    if not result.met:
        why = "; ".join(f"{p}: {r}" for p, r in result.refused) or "too few approvals"
        raise Refused(
            "quorum",
            f"batch {batch.id}: {len(result.principals)} of {quorum} valid approvals ({why})",
        )
    return content


def check_limits(content: BatchContent, limit: SignerLimit | None, signed_today: int) -> None:
    """The signer's own per-asset limits; ``signed_today`` is what it signed in the last 24 h."""
    where = f"{content.network}/{content.asset}"
    if limit is None:
        raise Refused("no_limit", f"{where}: the signer has no limit for this asset")
    for output in content.outputs:
        if output.amount > limit.per_transaction:
            raise Refused(
                "limit_per_transaction",
                f"{where}: withdrawal {output.withdrawal_id} moves {output.amount}, over the "
                f"signer's limit of {limit.per_transaction} per transaction",
            )
    if signed_today + content.total > limit.per_day:
        raise Refused(
            "limit_per_day",
            f"{where}: {content.total} more would make {signed_today + content.total} in 24 h, "
            f"over the signer's limit of {limit.per_day} per day",
        )


def _check_registry(batch: BatchRecord, network: Network) -> None:
    try:
        asset = network.asset(batch.asset)
    except LookupError:
        raise Refused("unknown_asset", f"batch {batch.id}: {batch.asset} is not listed") from None
    if not asset.withdrawals_enabled or network.watch_only:
        raise Refused("withdrawals_disabled", f"batch {batch.id}: withdrawals are disabled")
    if (
        batch.chain_id != network.chain_id
        or batch.contract != asset.contract
        or batch.decimals != asset.decimals
    ):
        raise Refused(
            "registry_mismatch",
            f"batch {batch.id}: chain id, contract or decimals differ from the registry",
        )


def _check_withdrawals(
    batch: BatchRecord,
    outputs: Sequence[BatchOutput],
    withdrawals: Mapping[int, WithdrawalRecord],
) -> None:
    for output in outputs:
        row = withdrawals.get(output.withdrawal_id)
        if row is None or (
            row.batch_id != batch.id
            or row.network != batch.network
            or row.asset != batch.asset
            or row.destination != output.destination
            or row.amount != output.amount
        ):
            raise Refused(
                "withdrawal_changed",
                f"batch {batch.id}: withdrawal {output.withdrawal_id} no longer matches the "
                "output that was approved",
            )
