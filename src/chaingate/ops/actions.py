"""The ops actions, one implementation for the API, the console and the command line.

Each takes a connection and the acting principal, checks the principal's role, does its change
and writes its audit row in ONE transaction: the audit log holds a row exactly when the change
happened. Withdrawal batches (create, approve, reject) are the withdrawal core's functions;
this module only holds the roles that gate them, so every surface shows and refuses the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog

from chaingate.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from chaingate.ledger.dispatcher import OUTBOX
from chaingate.settings import Principal
from chaingate.store import alerts, audit, outbox, queue
from chaingate.withdrawals import approvals, batching
from chaingate.withdrawals.rules import WithdrawalRules

log = structlog.get_logger(__name__)

OPS = frozenset({"ops_maker", "ops_approver"})
# Which roles may do what. The console hides a button its principal may not press, and every
# surface refuses (403) the same action for the same principal.
ACTION_ROLES: dict[str, frozenset[str]] = {
    "alert.ack": OPS,
    "alert.redeliver": OPS,
    "outbox.resend": OPS,
    "batch.create": frozenset({"ops_maker"}),
    "batch.approve": frozenset({"ops_approver"}),
    "batch.reject": frozenset({"ops_approver"}),
}
NOTE_MAX = 1000


def may(principal: Principal, action: str) -> bool:
    return bool(principal.roles & ACTION_ROLES[action])


def authorize(principal: Principal, action: str) -> None:
    """Raise PermissionDeniedError unless ``principal`` holds a role that ``action`` needs."""
    if not may(principal, action):
        needed = ", ".join(sorted(ACTION_ROLES[action]))
        raise PermissionDeniedError(f"{action} needs one of the roles: {needed}")


def clean_note(note: str | None, *, required: bool = False) -> str | None:
    """A note as stored: stripped, at most NOTE_MAX characters; None when empty."""
    text = (note or "").strip()
    if len(text) > NOTE_MAX:
        raise ValidationError(f"'note' must be at most {NOTE_MAX} characters")
    if required and not text:
        raise ValidationError("'note' is required: say why")
    return text or None


@dataclass(frozen=True, slots=True)
class AckResult:
    alert_id: int
    already: bool  # it was acknowledged before (by this call's principal or another)


async def acknowledge_alert(
    conn: asyncpg.Connection, principal: Principal, alert_id: int, note: str | None
) -> AckResult:
    """Acknowledge an alert with a note. Acknowledging twice is harmless (``already``) and
    writes no second audit row; an unknown alert raises NotFoundError."""
    authorize(principal, "alert.ack")
    note = clean_note(note)
    async with conn.transaction():
        if not await alerts.acknowledge(conn, alert_id, principal.name, note):
            if not await alerts.exists(conn, alert_id):
                raise NotFoundError(f"no alert {alert_id}")
            return AckResult(alert_id, already=True)
        await audit.record(conn, principal.name, "alert.ack", f"alert:{alert_id}", {"note": note})
    log.info("alert_acknowledged", alert_id=alert_id, principal=principal.name)
    return AckResult(alert_id, already=False)


async def redeliver_alerts(
    conn: asyncpg.Connection, principal: Principal, ids: list[int] | None
) -> int:
    """Make undelivered alerts (``ids``, or every one when None) due for the webhook now; the
    number made due. For after the webhook's refusal was fixed."""
    authorize(principal, "alert.redeliver")
    async with conn.transaction():
        count = await alerts.redeliver(conn, ids)
        await audit.record(
            conn,
            principal.name,
            "alert.redeliver",
            None,
            {"ids": "all" if ids is None else ids, "count": count},
        )
    log.info("alerts_redelivered", count=count, principal=principal.name)
    return count


async def resend_outbox(
    conn: asyncpg.Connection, principal: Principal, outbox_id: int, note: str | None
) -> str:
    """Send a parked ledger message again: same payload, same idempotency key, so the ledger
    answers a repeat with its first answer. Its idempotency key; ConflictError when the row is
    not parked, NotFoundError when there is no such row."""
    authorize(principal, "outbox.resend")
    note = clean_note(note)
    async with conn.transaction():
        key = await outbox.idempotency_key(conn, outbox_id)
        if key is None:
            raise NotFoundError(f"no outbox row {outbox_id}")
        if not await queue.unpark(conn, OUTBOX, outbox_id):
            raise ConflictError(f"outbox row {outbox_id} is not parked")
        await audit.record(
            conn,
            principal.name,
            "outbox.resend",
            f"ledger_outbox:{outbox_id}",
            {"idempotency_key": key, "note": note},
        )
    log.info("outbox_resent", outbox_id=outbox_id, principal=principal.name)
    return key


# --- withdrawal batches: the withdrawal core's functions, behind the same role table ----------
async def create_batch(
    conn: asyncpg.Connection,
    rules: WithdrawalRules,
    principal: Principal,
    network: Any,
    asset: Any,
) -> dict[str, Any]:
    """Batch the pending withdrawals of ``network``/``asset`` (maker); the batch's view."""
    authorize(principal, "batch.create")
    return await batching.make_batch(conn, rules, principal.name, network, asset)


async def approve_batch(
    conn: asyncpg.Connection,
    rules: WithdrawalRules,
    principal: Principal,
    batch_id: int,
    content_hash: Any,
) -> dict[str, Any]:
    """Approve the batch at the content hash the approver reviewed (quorum, maker-checker and
    a stale hash are the withdrawal core's rules); the batch's view."""
    authorize(principal, "batch.approve")
    return await approvals.approve(conn, rules, principal.name, batch_id, content_hash)


async def reject_batch(
    conn: asyncpg.Connection,
    rules: WithdrawalRules,
    principal: Principal,
    batch_id: int,
    reason: Any,
    release: Any,
) -> dict[str, Any]:
    """Reject a batch with a reason; ``release`` returns its withdrawals to pending."""
    authorize(principal, "batch.reject")
    return await approvals.reject(conn, rules, principal.name, batch_id, reason, release)
