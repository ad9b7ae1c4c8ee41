"""Every status change of a withdrawal: checked, written to its history, and told to the ledger.

``record_status`` is the one way a withdrawal changes status, for the API (intake, batching,
approvals, rejection) and for the signer, broadcaster and tracker alike. It runs in the caller's
transaction, so the change, its history row and its ledger event (the outbox) commit together
or not at all; the dispatcher then delivers the events of one withdrawal in order.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog

from chaingate.domain.withdrawals import (
    FINAL_WITHDRAWAL_STATUSES,
    FUNDS_RETURNED,
    BatchStatus,
    WithdrawalStatus,
    check_batch_transition,
    check_withdrawal_transition,
)
from chaingate.errors import NotFoundError, ValidationError
from chaingate.ledger.messages import WithdrawalEvent, withdrawal_event_key
from chaingate.store import audit, outbox
from chaingate.store import withdrawals as rows

log = structlog.get_logger(__name__)


async def withdrawals_of(conn: asyncpg.Connection, row: asyncpg.Record) -> list[int]:
    """The withdrawals a transaction row pays: its own (EVM: one transaction per output), or
    every output of its batch (Bitcoin: one transaction per batch, withdrawal_id NULL)."""
    if row["withdrawal_id"] is not None:
        return [int(row["withdrawal_id"])]
    outputs = await conn.fetch(
        "SELECT withdrawal_id FROM batch_outputs WHERE batch_id = $1 ORDER BY withdrawal_id",
        row["batch_id"],
    )
    return [int(r["withdrawal_id"]) for r in outputs]


async def record_status(
    conn: asyncpg.Connection,
    withdrawal_id: int,
    new_status: str | WithdrawalStatus,
    *,
    actor: str,
    reason: str | None = None,
    batch_id: int | None = None,
    txid: str | None = None,
    fee: int | None = None,
    confirmations: int | None = None,
    details: dict[str, Any] | None = None,
    notify_ledger: bool = True,
) -> asyncpg.Record:
    """Move a withdrawal to ``new_status`` in the caller's transaction; the updated row.

    Raises ``InvalidTransitionError`` when the state machine forbids the move and
    ``NotFoundError`` for an unknown id. ``failed`` and ``cancelled`` need a ``reason``; moving
    back to ``requested`` detaches the withdrawal from its batch, and ``batch_id`` attaches it
    (when it becomes ``batched``). The ledger event is keyed per
    withdrawal and status (``withdrawal_event_key``); ``notify_ledger=False`` records the change
    without one (only for a hold the ledger itself refused: there is nothing to release).
    """
    current = await rows.get(conn, withdrawal_id, for_update=True)
    if current is None:
        raise NotFoundError(f"no withdrawal {withdrawal_id}")
    status = check_withdrawal_transition(current["status"], str(new_status))
    if status in FUNDS_RETURNED and not (reason and reason.strip()):
        raise ValidationError(f"a withdrawal becomes {status} only with a reason")
    # A withdrawal joins a batch when it is batched and leaves it when it is released.
    new_batch: int | None = current["batch_id"] if batch_id is None else batch_id
    if status is WithdrawalStatus.REQUESTED:
        new_batch = None
    updated = await rows.set_status(
        conn,
        withdrawal_id,
        status.value,
        batch_id=new_batch,
        txid=txid,
        fee=fee,
        confirmations=confirmations,
        failure_reason=reason if status in FUNDS_RETURNED else None,
    )
    occurrence = await rows.add_history(
        conn, withdrawal_id, current["status"], status.value, actor, reason, details or {}
    )
    if notify_ledger:
        event = event_of(updated, status, occurrence, reason)
        await outbox.enqueue(conn, event.KIND, event.idempotency_key, event.body())
    log.info(
        "withdrawal_status",
        withdrawal_id=withdrawal_id,
        old=current["status"],
        new=status.value,
        batch_id=new_batch,
        actor=actor,
    )
    if status in FINAL_WITHDRAWAL_STATUSES and new_batch is not None:
        await _complete_batch_if_done(conn, new_batch, actor)
    return updated


async def record_requested(conn: asyncpg.Connection, row: asyncpg.Record, actor: str) -> None:
    """The first history row and the ``requested`` event (the ledger holds the funds) of a
    withdrawal just inserted, in the same transaction."""
    occurrence = await rows.add_history(
        conn, row["id"], None, WithdrawalStatus.REQUESTED.value, actor, None, {}
    )
    event = event_of(row, WithdrawalStatus.REQUESTED, occurrence, None)
    await outbox.enqueue(conn, event.KIND, event.idempotency_key, event.body())


def event_of(
    row: asyncpg.Record, status: WithdrawalStatus, occurrence: int, reason: str | None
) -> WithdrawalEvent:
    amount = int(row["amount"])
    return WithdrawalEvent(
        idempotency_key=withdrawal_event_key(row["id"], status.value, occurrence),
        withdrawal_id=str(row["id"]),
        request_id=row["request_id"],
        status=status.value,
        user_id=row["user_id"],
        network=row["network"],
        asset=row["asset"],
        amount=amount,
        batch_id=None if row["batch_id"] is None else str(row["batch_id"]),
        txid=row["txid"],
        fee=None if row["fee"] is None else int(row["fee"]),
        amount_returned=amount if status in FUNDS_RETURNED else None,
        reason=reason,
    )


async def record_batch_status(
    conn: asyncpg.Connection,
    batch_id: int,
    new_status: str | BatchStatus,
    *,
    actor: str,
    reason: str | None = None,
) -> BatchStatus:
    """Move a batch to ``new_status`` (checked against the batch state machine), with an audit
    row, in the caller's transaction."""
    current = await conn.fetchval("SELECT status FROM batches WHERE id = $1 FOR UPDATE", batch_id)
    if current is None:
        raise NotFoundError(f"no batch {batch_id}")
    status = check_batch_transition(current, str(new_status))
    if status in (BatchStatus.REJECTED, BatchStatus.FAILED) and not (reason and reason.strip()):
        raise ValidationError(f"a batch becomes {status} only with a reason")
    await conn.execute(
        """UPDATE batches SET status = $2, updated_at = now(),
                  approved_at = CASE WHEN $2 = 'approved' THEN now() ELSE approved_at END,
                  failure_reason = CASE WHEN $2 = 'failed' THEN $3 ELSE failure_reason END,
                  rejection_reason = CASE WHEN $2 = 'rejected' THEN $3 ELSE rejection_reason END,
                  rejected_by = CASE WHEN $2 = 'rejected' THEN $4 ELSE rejected_by END
           WHERE id = $1""",
        batch_id,
        status.value,
        reason,
        actor,
    )
    await audit.record(
        conn,
        actor,
        f"batch.{status.value}",
        f"batch:{batch_id}",
        {"from": current, "reason": reason},
    )
    return status


async def _complete_batch_if_done(conn: asyncpg.Connection, batch_id: int, actor: str) -> None:
    """A batch whose withdrawals all reached a final status is completed."""
    open_count = await conn.fetchval(
        "SELECT count(*) FROM withdrawals WHERE batch_id = $1 AND NOT (status = ANY($2::text[]))",
        batch_id,
        [s.value for s in FINAL_WITHDRAWAL_STATUSES],
    )
    status = await conn.fetchval("SELECT status FROM batches WHERE id = $1", batch_id)
    if open_count == 0 and status in (BatchStatus.SIGNED, BatchStatus.BROADCAST):
        await record_batch_status(conn, batch_id, BatchStatus.COMPLETED, actor=actor)
