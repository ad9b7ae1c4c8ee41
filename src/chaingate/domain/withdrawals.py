"""The withdrawal and batch state machines (SPEC section 7), as data.

A withdrawal moves ``requested -> batched -> approved -> signing -> signed -> broadcast ->
confirmed``, or ends ``failed`` / ``cancelled`` with its funds handed back to the ledger. A batch
moves ``pending_approval -> approved -> signing -> signed -> broadcast -> completed``, or ends
``rejected`` / ``failed``. The allowed transitions are tables; ``check_*_transition`` refuses
anything else with ``InvalidTransitionError``, so no store function can make a move the tables do
not list. Pure: no I/O, no store or API imports (the signer imports this module).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from chaingate.errors import InvalidTransitionError

S = TypeVar("S", bound=StrEnum)


class WithdrawalStatus(StrEnum):
    REQUESTED = "requested"  # accepted; the ledger holds the funds; waiting for a batch
    BATCHED = "batched"  # an output of a batch waiting for approval
    APPROVED = "approved"  # its batch reached the quorum; a signer job is queued
    SIGNING = "signing"  # a signer claimed the job
    SIGNED = "signed"  # the signed bytes are stored (never re-signed, only rebroadcast)
    BROADCAST = "broadcast"  # sent to the network; tracked to confirmation
    CONFIRMED = "confirmed"  # confirmed on the verified chain; the ledger settles the hold
    FAILED = "failed"  # will never be sent (or its nonce/inputs went to another tx): released
    CANCELLED = "cancelled"  # refused before batching (e.g. the ledger cannot hold the funds)


class BatchStatus(StrEnum):
    PENDING_APPROVAL = "pending_approval"  # made by a maker, waiting for the quorum
    APPROVED = "approved"  # quorum reached; exactly one signer job queued
    SIGNING = "signing"
    SIGNED = "signed"
    BROADCAST = "broadcast"
    COMPLETED = "completed"  # every withdrawal of the batch is confirmed or failed
    REJECTED = "rejected"  # refused by an approver; withdrawals released or failed
    FAILED = "failed"  # refused by the signer or lost; its withdrawals failed


_W = WithdrawalStatus
WITHDRAWAL_TRANSITIONS: dict[WithdrawalStatus, frozenset[WithdrawalStatus]] = {
    _W.REQUESTED: frozenset({_W.BATCHED, _W.CANCELLED, _W.FAILED}),
    # Back to requested: its batch was rejected with release. Failed: rejected without release.
    _W.BATCHED: frozenset({_W.APPROVED, _W.REQUESTED, _W.FAILED}),
    # Back to requested: its batch was voided before signing (the ledger refused another
    # output's hold; the signer signs nothing whose hold is unconfirmed).
    _W.APPROVED: frozenset({_W.SIGNING, _W.REQUESTED, _W.FAILED}),
    _W.SIGNING: frozenset({_W.SIGNED, _W.FAILED}),
    _W.SIGNED: frozenset({_W.BROADCAST, _W.FAILED}),
    # Failed only once its nonce/inputs are consumed by another transaction beyond reorg depth
    # (the tracker's rule, SPEC 7), never on a timeout alone.
    _W.BROADCAST: frozenset({_W.CONFIRMED, _W.FAILED}),
    _W.CONFIRMED: frozenset(),
    _W.FAILED: frozenset(),
    _W.CANCELLED: frozenset(),
}

_B = BatchStatus
BATCH_TRANSITIONS: dict[BatchStatus, frozenset[BatchStatus]] = {
    _B.PENDING_APPROVAL: frozenset({_B.APPROVED, _B.REJECTED}),
    # Rejected: the signer refused it (job parked) before signing anything, and ops rejects it.
    _B.APPROVED: frozenset({_B.SIGNING, _B.REJECTED, _B.FAILED}),
    _B.SIGNING: frozenset({_B.SIGNED, _B.FAILED}),
    _B.SIGNED: frozenset({_B.BROADCAST, _B.COMPLETED, _B.FAILED}),
    _B.BROADCAST: frozenset({_B.COMPLETED}),
    _B.COMPLETED: frozenset(),
    _B.REJECTED: frozenset(),
    _B.FAILED: frozenset(),
}

# The withdrawal statuses after which the held funds belong to the user again (the ledger
# releases the hold), and those after which the ledger settles it.
FUNDS_RETURNED = frozenset({_W.FAILED, _W.CANCELLED})
FINAL_WITHDRAWAL_STATUSES = frozenset({_W.CONFIRMED, _W.FAILED, _W.CANCELLED})
# Statuses that count against the per-user daily limit: everything not handed back.
LIMIT_COUNTED = frozenset(set(_W) - FUNDS_RETURNED)


def check_withdrawal_transition(current: str, new: str) -> WithdrawalStatus:
    """``new`` as a status when a withdrawal in ``current`` may move there; raises
    ``InvalidTransitionError`` otherwise (including unknown statuses and staying put)."""
    return _check(WITHDRAWAL_TRANSITIONS, WithdrawalStatus, "withdrawal", current, new)


def check_batch_transition(current: str, new: str) -> BatchStatus:
    """``new`` as a status when a batch in ``current`` may move there; raises
    ``InvalidTransitionError`` otherwise."""
    return _check(BATCH_TRANSITIONS, BatchStatus, "batch", current, new)


def _check(table: dict[S, frozenset[S]], kind: type[S], what: str, current: str, new: str) -> S:
    try:
        old_status, new_status = kind(current), kind(new)
    except ValueError:
        raise InvalidTransitionError(f"unknown {what} status in {current!r} -> {new!r}") from None
    if new_status not in table[old_status]:
        allowed = ", ".join(sorted(table[old_status])) or "none (final)"
        raise InvalidTransitionError(
            f"a {what} in status {old_status} cannot become {new_status} (allowed: {allowed})"
        )
    return new_status
