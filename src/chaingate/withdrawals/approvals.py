"""Maker-checker (SPEC section 7): approving and rejecting a batch.

An approval names the content hash the approver saw; it counts only for that hash, from a
principal other than the maker, once per principal, and is stored sealed (HMAC under a key the
database never holds). When the quorum of distinct approvers is reached, the batch and its
withdrawals become ``approved`` and ONE signer job is queued, in the same transaction. Before
any of that, the batch's own record is re-checked: its maker seal, and its content hash
recomputed from the outputs it covers, so a batch edited in the database is refused (with a
critical alert) rather than approved. Every action leaves an audit row in its transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from chaingate.domain import AlertKind, AlertSeverity, NewAlert
from chaingate.domain.approvals import Act, check_quorum, seal_approval, verify_seal
from chaingate.domain.batch_content import content_hash
from chaingate.domain.withdrawals import BatchStatus, WithdrawalStatus
from chaingate.errors import (
    ConflictError,
    DuplicateApprovalError,
    InvalidTransitionError,
    MakerCannotApproveError,
    NotFoundError,
    SealKeyMissingError,
    StaleContentHashError,
    ValidationError,
)
from chaingate.store import audit
from chaingate.store import batches as batch_rows
from chaingate.store import withdrawals as rows
from chaingate.store.alerts import raise_alert
from chaingate.withdrawals.rules import WithdrawalRules
from chaingate.withdrawals.status import record_batch_status, record_status
from chaingate.withdrawals.views import get_batch

log = structlog.get_logger(__name__)


class TamperedBatchError(ConflictError):
    """Raised when a batch's stored record no longer matches its seal or its content hash."""

    code = "batch_tampered"


async def approve(
    conn: asyncpg.Connection,
    rules: WithdrawalRules,
    approver: str,
    batch_id: int,
    approved_hash: Any,
) -> dict[str, Any]:
    """Record ``approver``'s sealed approval of ``batch_id`` at ``approved_hash``; on quorum,
    approve the batch and queue its signer job. The batch as shown by ``get_batch``."""
    if not isinstance(approved_hash, str) or not approved_hash.strip():
        raise ValidationError("'content_hash' is required: the hash of the batch you reviewed")
    if not rules.seal_key:
        raise SealKeyMissingError("CHAINGATE_APPROVAL_SEAL_KEY is not set: nothing can be approved")
    tampered: str | None = None
    async with conn.transaction():
        batch = await _locked_batch(conn, batch_id)
        if batch["status"] != BatchStatus.PENDING_APPROVAL:
            raise InvalidTransitionError(
                f"batch {batch_id} is {batch['status']}: only a batch pending approval can be "
                "approved"
            )
        if approved_hash.strip().lower() != batch["content_hash"]:
            raise StaleContentHashError(
                f"batch {batch_id} has content hash {batch['content_hash']}, not the one "
                "approved: review the batch again"
            )
        tampered = await _tampering(conn, rules, batch)
        if tampered is None:
            if approver == batch["maker"]:
                raise MakerCannotApproveError(
                    f"{approver} made batch {batch_id} and cannot approve it"
                )
            approval = seal_approval(
                rules.seal_key, batch_id, batch["content_hash"], approver, datetime.now(UTC)
            )
            if not await batch_rows.insert_approval(conn, approval):
                raise DuplicateApprovalError(f"{approver} already approved batch {batch_id}")
            await audit.record(
                conn,
                approver,
                "batch.approve",
                f"batch:{batch_id}",
                {"content_hash": batch["content_hash"]},
            )
            await _approve_on_quorum(conn, rules, batch, approver)
            view = await get_batch(conn, batch_id, rules.quorum)
    if tampered is not None:
        await _alert_tampered(conn, batch_id, tampered, approver)
        raise TamperedBatchError(
            f"batch {batch_id} does not match its sealed record ({tampered}); refused"
        )
    log.info("batch_approval", batch_id=batch_id, approver=approver, status=view["status"])
    return view


async def reject(
    conn: asyncpg.Connection,
    rules: WithdrawalRules,
    principal: str,
    batch_id: int,
    reason: Any,
    release: Any,
) -> dict[str, Any]:
    """Reject a batch pending approval, or an approved one the signer refused (its job parked,
    nothing signed). With ``release`` its withdrawals go back to ``requested`` (to be batched
    again); without, they fail and the ledger releases the funds."""
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError("'reason' is required: why the batch is rejected")
    if len(reason) > 1000:
        raise ValidationError("'reason' is longer than 1000 characters")
    if not isinstance(release, bool):
        raise ValidationError("'release' must be true (back to pending) or false (fail them)")
    async with conn.transaction():
        # The signer job first, then the batch: the order feedback.py locks them in too.
        job = await conn.fetchrow(
            "SELECT parked_at FROM signer_jobs WHERE batch_id = $1 FOR UPDATE", batch_id
        )
        batch = await _locked_batch(conn, batch_id)
        if batch["status"] == BatchStatus.APPROVED:
            await _take_back_from_signer(conn, batch_id, job, reason)
        elif batch["status"] != BatchStatus.PENDING_APPROVAL:
            raise InvalidTransitionError(
                f"batch {batch_id} is {batch['status']}: only a batch pending approval (or one "
                "the signer refused) can be rejected"
            )
        await record_batch_status(
            conn, batch_id, BatchStatus.REJECTED, actor=principal, reason=reason
        )
        for row in await rows.of_batch(conn, batch_id, for_update=True):
            if release:
                await record_status(
                    conn, row["id"], WithdrawalStatus.REQUESTED, actor=principal, reason=reason
                )
            else:
                await record_status(
                    conn,
                    row["id"],
                    WithdrawalStatus.FAILED,
                    actor=principal,
                    reason=f"batch {batch_id} rejected: {reason}",
                )
        await audit.record(
            conn,
            principal,
            "batch.reject",
            f"batch:{batch_id}",
            {"reason": reason, "release": release},
        )
        view = await get_batch(conn, batch_id, rules.quorum)
    log.info("batch_rejected", batch_id=batch_id, principal=principal, release=release)
    return view


async def _take_back_from_signer(
    conn: asyncpg.Connection, batch_id: int, job: asyncpg.Record | None, reason: str
) -> None:
    """An approved batch leaves the signer's hands only once the signer refused it (its job
    parked) and only while nothing of it was signed; its job is then closed for good."""
    signed = await conn.fetchval(
        "SELECT 1 FROM withdrawal_txs WHERE batch_id = $1 LIMIT 1", batch_id
    )
    if job is None or job["parked_at"] is None or signed:
        raise InvalidTransitionError(
            f"batch {batch_id} is approved and in the signer's hands: it can be rejected only "
            "after the signer refused it (its job parked) and while nothing of it is signed"
        )
    await conn.execute(
        """UPDATE signer_jobs SET done_at = now(), lease_token = NULL,
                  last_error = left('rejected after the signer refused it: ' || $2, 1000)
           WHERE batch_id = $1 AND done_at IS NULL""",
        batch_id,
        reason,
    )


async def _locked_batch(conn: asyncpg.Connection, batch_id: int) -> asyncpg.Record:
    batch = await batch_rows.get(conn, batch_id, for_update=True)
    if batch is None:
        raise NotFoundError(f"no batch {batch_id}")
    return batch


async def _tampering(
    conn: asyncpg.Connection, rules: WithdrawalRules, batch: asyncpg.Record
) -> str | None:
    """What no longer matches in the stored batch, or None when it is intact."""
    if not verify_seal(
        rules.seal_key,
        Act.MAKE,
        batch["id"],
        batch["content_hash"],
        batch["maker"],
        batch["made_at"],
        batch["maker_seal"],
    ):
        return "the maker's seal does not verify"
    outputs = await batch_rows.outputs(conn, batch["id"])
    try:
        recomputed = content_hash(batch_rows.content_of(batch, outputs), batch["content_version"])
    except ValidationError as exc:
        return f"its outputs are not valid content: {exc}"
    if recomputed != batch["content_hash"]:
        return "its outputs do not hash to its content hash"
    paid = await rows.of_batch(conn, batch["id"])
    if {(r["id"], r["destination"], int(r["amount"])) for r in paid} != {
        (o["withdrawal_id"], o["destination"], int(o["amount"])) for o in outputs
    }:
        return "its withdrawals differ from the outputs it covers"
    return None


async def _approve_on_quorum(
    conn: asyncpg.Connection, rules: WithdrawalRules, batch: asyncpg.Record, approver: str
) -> None:
    quorum = check_quorum(
        batch_rows.as_approvals(await batch_rows.approvals(conn, batch["id"])),
        key=rules.seal_key,
        batch_id=batch["id"],
        content_hash=batch["content_hash"],
        maker=batch["maker"],
        quorum=rules.quorum,
    )
    if not quorum.met:
        return
    await record_batch_status(conn, batch["id"], BatchStatus.APPROVED, actor=approver)
    for row in await rows.of_batch(conn, batch["id"], for_update=True):
        await record_status(conn, row["id"], WithdrawalStatus.APPROVED, actor=approver)
    await batch_rows.queue_signer_job(conn, batch["id"])
    await audit.record(
        conn,
        approver,
        "batch.quorum",
        f"batch:{batch['id']}",
        {"approvers": list(quorum.principals), "needed": quorum.needed},
    )
    log.info("batch_approved", batch_id=batch["id"], approvers=list(quorum.principals))


async def _alert_tampered(
    conn: asyncpg.Connection, batch_id: int, what: str, principal: str
) -> None:
    async with conn.transaction():
        await raise_alert(
            conn,
            NewAlert(
                kind=AlertKind.BATCH_TAMPERED,
                severity=AlertSeverity.CRITICAL,
                message=f"batch {batch_id} does not match its sealed record: {what}; "
                f"approval by {principal} refused",
                dedup_key=f"batch_tampered:{batch_id}:{what}",
                details={"batch_id": batch_id, "what": what, "principal": principal},
            ),
        )
        await audit.record(
            conn, principal, "batch.approve_refused", f"batch:{batch_id}", {"why": what}
        )
    log.critical("batch_tampered", batch_id=batch_id, what=what)
