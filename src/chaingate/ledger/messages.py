"""The messages chaingate sends the ledger (SPEC section 6), typed once for both sides.

The watcher and the withdrawal side build these and put ``body()`` in the outbox; the reference
ledger parses request bodies back into the same types (``ledger/reference/validation.py``). The
idempotency key of each message comes from the key builders here and nowhere else, so a message
sent again after any crash carries the key it was first sent with.

Amounts are ``int`` here and decimal strings on the wire (JSON numbers lose precision above
2^53). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from chaingate.domain.withdrawals import FUNDS_RETURNED

# Withdrawal statuses after which the withdrawn funds belong to the user again.
FUNDS_RETURNED_STATUSES = frozenset(s.value for s in FUNDS_RETURNED)


def credit_key(network: str, txid: str, position: str, generation: int = 0) -> str:
    """Idempotency key of a deposit's credit; a deposit re-mined after a reversal gets a new one
    (``generation``), so the ledger does not answer it with the reversed credit."""
    suffix = f":g{generation}" if generation else ""
    return f"credit:{network}:{txid}:{position}{suffix}"


def reversal_key(of_credit: str) -> str:
    """Idempotency key of the reversal of the credit whose key is ``of_credit``."""
    return f"reversal:{of_credit}"


def withdrawal_event_key(withdrawal_id: int | str, status: str, occurrence: int = 1) -> str:
    """Idempotency key of a withdrawal's status change: one per withdrawal and status, and a
    numbered one when a withdrawal enters a status again (released from a rejected batch, it is
    ``requested`` and then ``batched`` a second time)."""
    base = f"withdrawal:{withdrawal_id}:{status}"
    return base if occurrence <= 1 else f"{base}:{occurrence}"


@dataclass(frozen=True, slots=True)
class Credit:
    """``POST /credits``: a confirmed deposit credited to a user."""

    KIND: ClassVar[str] = "credit"
    PATH: ClassVar[str] = "/credits"

    idempotency_key: str
    user_id: str
    network: str
    asset: str
    amount: int
    decimals: int
    txid: str
    position: str
    block_number: int

    def body(self) -> dict[str, Any]:
        return {
            "idempotency_key": self.idempotency_key,
            "user_id": self.user_id,
            "network": self.network,
            "asset": self.asset,
            "amount": str(self.amount),
            "decimals": self.decimals,
            "txid": self.txid,
            "position": self.position,
            "block_number": self.block_number,
        }


@dataclass(frozen=True, slots=True)
class Reversal:
    """``POST /reversals``: undo a credit whose deposit left the chain in a reorg."""

    KIND: ClassVar[str] = "reversal"
    PATH: ClassVar[str] = "/reversals"

    idempotency_key: str
    credit_key: str
    reason: str

    def body(self) -> dict[str, Any]:
        return {
            "idempotency_key": self.idempotency_key,
            "credit_key": self.credit_key,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class WithdrawalEvent:
    """``POST /withdrawal-events``: a withdrawal changed status.

    Every event names the withdrawal's user, network, asset and amount, so the ledger can hold
    the funds at ``requested``, settle them at ``confirmed`` and release them at ``failed`` or
    ``cancelled`` (``amount_returned`` says how much goes back). ``fee`` is the network fee paid,
    in base units of the network's native coin, once known.
    """

    KIND: ClassVar[str] = "withdrawal_event"
    PATH: ClassVar[str] = "/withdrawal-events"

    idempotency_key: str
    withdrawal_id: str
    status: str
    user_id: str
    network: str
    asset: str
    amount: int
    request_id: str | None = None
    batch_id: str | None = None
    txid: str | None = None
    fee: int | None = None
    amount_returned: int | None = None
    reason: str | None = None

    def body(self) -> dict[str, Any]:
        return {
            "idempotency_key": self.idempotency_key,
            "withdrawal_id": self.withdrawal_id,
            "request_id": self.request_id,
            "status": self.status,
            "user_id": self.user_id,
            "network": self.network,
            "asset": self.asset,
            "amount": str(self.amount),
            "batch_id": self.batch_id,
            "txid": self.txid,
            "fee": None if self.fee is None else str(self.fee),
            "amount_returned": None if self.amount_returned is None else str(self.amount_returned),
            "reason": self.reason,
        }


LedgerMessage = Credit | Reversal | WithdrawalEvent
KIND_PATHS = {m.KIND: m.PATH for m in (Credit, Reversal, WithdrawalEvent)}
