"""What the withdrawal side does when the ledger refuses to hold a withdrawal's funds.

The ``requested`` event asks the ledger to hold the amount; a ledger that cannot (the user's
balance does not cover it) answers 4xx and the dispatcher parks the event. Then, in the same
transaction, the withdrawal is cancelled where everyone can see it: still pending, it is
cancelled; already in a batch that nobody has signed (the signer waits for the holds of every
output), that batch is voided, its other withdrawals go back to pending, and this one is
cancelled. Nothing is sent to the ledger about it: it holds nothing, so there is nothing to
release, and its later events, queued behind the refused one, are parked with it.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog

from chaingate.domain import AlertKind, AlertSeverity, NewAlert
from chaingate.domain.withdrawals import BatchStatus, WithdrawalStatus
from chaingate.ledger.messages import WithdrawalEvent
from chaingate.store import batches as batch_rows
from chaingate.store import withdrawals as rows
from chaingate.store.alerts import raise_alert
from chaingate.withdrawals.status import record_batch_status, record_status

log = structlog.get_logger(__name__)
LEDGER = "ledger"  # the actor of changes the ledger's answer causes


async def refused_by_ledger(
    conn: asyncpg.Connection, kind: str, payload: dict[str, Any], code: str, error: str
) -> None:
    """Called by the dispatcher in the transaction that parks a refused outbox row."""
    if kind != WithdrawalEvent.KIND or payload.get("status") != WithdrawalStatus.REQUESTED:
        return
    raw_id = payload.get("withdrawal_id")
    if not isinstance(raw_id, str) or not raw_id.isdigit():
        return
    withdrawal_id = int(raw_id)
    row = await rows.get(conn, withdrawal_id, for_update=True)
    if row is None or row["status"] == WithdrawalStatus.CANCELLED:
        return
    reason = f"the ledger refused to hold the funds ({code})"
    status = row["status"]
    voided = False
    if status in (WithdrawalStatus.BATCHED, WithdrawalStatus.APPROVED):
        voided = await _void_batch(conn, row["batch_id"], withdrawal_id, reason)
    if not voided and status != WithdrawalStatus.REQUESTED:
        # Signed already (or later): the signer should sign nothing whose hold is unconfirmed,
        # so the ledger refused late. Change nothing that could stop money in flight; say so.
        await raise_alert(
            conn,
            NewAlert(
                kind=AlertKind.WITHDRAWAL_HOLD_REFUSED_LATE,
                severity=AlertSeverity.CRITICAL,
                network=row["network"],
                asset=row["asset"],
                amount=int(row["amount"]),
                user_id=row["user_id"],
                message=f"the ledger refused the hold of withdrawal {withdrawal_id}, which is "
                f"already {status}",
                dedup_key=f"withdrawal_hold_refused_late:{withdrawal_id}",
                details={"withdrawal_id": withdrawal_id, "error": error[:500]},
            ),
        )
        log.critical("withdrawal_hold_refused_late", withdrawal_id=withdrawal_id, status=status)
        return
    await record_status(
        conn,
        withdrawal_id,
        WithdrawalStatus.CANCELLED,
        actor=LEDGER,
        reason=reason,
        notify_ledger=False,
    )
    await _park_later_events(conn, withdrawal_id)
    log.warning("withdrawal_cancelled_by_ledger", withdrawal_id=withdrawal_id, code=code)


async def _void_batch(conn: asyncpg.Connection, batch_id: int, culprit: int, reason: str) -> bool:
    """Take an unsigned batch apart: rejected (pending approval) or failed (approved, its
    signer job finished unsigned); every withdrawal goes back to pending. False (nothing done)
    when the signer has recorded signed transactions for it."""
    # The signer records its signatures and completes its job in one transaction: holding the
    # job row, either it has committed (its transactions are visible below) or its completion
    # will find the job finished here and roll its signatures back.
    await conn.execute("SELECT 1 FROM signer_jobs WHERE batch_id = $1 FOR UPDATE", batch_id)
    if await conn.fetchval("SELECT 1 FROM withdrawal_txs WHERE batch_id = $1 LIMIT 1", batch_id):
        return False
    batch = await batch_rows.get(conn, batch_id, for_update=True)
    assert batch is not None
    why = f"withdrawal {culprit}: {reason}"
    if batch["status"] == BatchStatus.PENDING_APPROVAL:
        await record_batch_status(conn, batch_id, BatchStatus.REJECTED, actor=LEDGER, reason=why)
    elif batch["status"] == BatchStatus.APPROVED:
        await record_batch_status(conn, batch_id, BatchStatus.FAILED, actor=LEDGER, reason=why)
        await conn.execute(
            """UPDATE signer_jobs SET done_at = now(), last_error = $2, lease_token = NULL
               WHERE batch_id = $1 AND done_at IS NULL""",
            batch_id,
            f"batch voided before signing: {why}"[:1000],
        )
    else:
        return False
    for member in await rows.of_batch(conn, batch_id, for_update=True):
        await record_status(
            conn,
            member["id"],
            WithdrawalStatus.REQUESTED,
            actor=LEDGER,
            reason=f"batch {batch_id} voided: {why}",
            notify_ledger=member["id"] != culprit,
        )
    return True


async def _park_later_events(conn: asyncpg.Connection, withdrawal_id: int) -> None:
    await conn.execute(
        """UPDATE ledger_outbox
           SET parked_at = now(), next_attempt_at = 'infinity', lease_token = NULL,
               last_error = 'not sent: the ledger refused this withdrawal''s hold'
           WHERE kind = 'withdrawal_event' AND delivered_at IS NULL AND parked_at IS NULL
             AND payload->>'withdrawal_id' = $1""",
        str(withdrawal_id),
    )
