"""How withdrawals and batches are shown (API, ops console, ops CLI): plain JSON-ready dicts
with amounts as decimal strings of base units."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from chaingate.domain.withdrawals import BatchStatus, WithdrawalStatus
from chaingate.errors import NotFoundError, ValidationError
from chaingate.store import batches as batch_rows
from chaingate.store import withdrawals as rows

MAX_PAGE = 1000


def _amount(value: Any) -> str | None:
    return None if value is None else str(int(value))


def _withdrawal(
    row: asyncpg.Record, history: list[dict[str, Any]], resources: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "id": row["id"],
        "request_id": row["request_id"],
        "user_id": row["user_id"],
        "network": row["network"],
        "asset": row["asset"],
        "to_address": row["destination"],
        "amount": _amount(row["amount"]),
        "status": row["status"],
        "batch_id": row["batch_id"],
        "txid": row["txid"],
        "fee": _amount(row["fee"]),
        "resources": resources,
        "confirmations": row["confirmations"],
        "failure_reason": row["failure_reason"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "history": history,
    }


async def withdrawal_view(conn: asyncpg.Connection, row: asyncpg.Record) -> dict[str, Any]:
    history = await rows.history(conn, [row["id"]])
    resources = await rows.resources(conn, [row["id"]])
    return _withdrawal(row, history[row["id"]], resources.get(row["id"]))


async def get_withdrawal(conn: asyncpg.Connection, withdrawal_id: int) -> dict[str, Any]:
    row = await rows.get(conn, withdrawal_id)
    if row is None:
        raise NotFoundError(f"no withdrawal {withdrawal_id}")
    return await withdrawal_view(conn, row)


async def list_withdrawals(
    conn: asyncpg.Connection,
    *,
    user_id: str | None = None,
    network: str | None = None,
    asset: str | None = None,
    status: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """``{"withdrawals": [...], "last_id": ...}``: those with an id below ``before_id`` (all
    when None), newest first; ``last_id`` is where the next page starts (None at the end)."""
    if status is not None and status not in {s.value for s in WithdrawalStatus}:
        raise ValidationError(f"unknown status {status!r}")
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"'limit' must be an integer from 1 to {MAX_PAGE}")
    found = await rows.search(
        conn,
        user_id=user_id,
        network=network,
        asset=asset,
        status=status,
        before_id=before_id,
        limit=limit + 1,
    )
    page = found[:limit]
    ids = [r["id"] for r in page]
    history = await rows.history(conn, ids)
    resources = await rows.resources(conn, ids)
    items = [_withdrawal(r, history[r["id"]], resources.get(r["id"])) for r in page]
    return {"withdrawals": items, "last_id": page[-1]["id"] if len(found) > limit else None}


def batch_view(
    batch: asyncpg.Record,
    outputs: Sequence[asyncpg.Record],
    approvals: Sequence[asyncpg.Record],
    quorum: int,
    resources: dict[int, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    used = resources or {}
    return {
        "id": batch["id"],
        "network": batch["network"],
        "asset": batch["asset"],
        "chain_id": batch["chain_id"],
        "contract": batch["contract"],
        "decimals": batch["decimals"],
        "status": batch["status"],
        "content_hash": batch["content_hash"],
        "content_version": batch["content_version"],
        "fee_cap": _amount(batch["fee_cap"]),
        "total": _amount(batch["total"]),
        "output_count": batch["output_count"],
        "maker": batch["maker"],
        "made_at": batch["made_at"],
        "approved_at": batch["approved_at"],
        "rejected_by": batch["rejected_by"],
        "rejection_reason": batch["rejection_reason"],
        "failure_reason": batch["failure_reason"],
        "quorum": {"needed": quorum, "approvals": len(approvals)},
        "approvals": [
            {"principal": a["principal"], "approved_at": a["approved_at"]} for a in approvals
        ],
        "outputs": [
            {
                "withdrawal_id": o["withdrawal_id"],
                "user_id": o["user_id"],
                "to_address": o["destination"],
                "amount": _amount(o["amount"]),
                "status": o["status"],
                "txid": o["txid"],
                "resources": used.get(o["withdrawal_id"]),
            }
            for o in outputs
        ],
    }


async def get_batch(conn: asyncpg.Connection, batch_id: int, quorum: int) -> dict[str, Any]:
    batch = await batch_rows.get(conn, batch_id)
    if batch is None:
        raise NotFoundError(f"no batch {batch_id}")
    outputs = await batch_rows.outputs(conn, batch_id)
    approvals = await batch_rows.approvals(conn, batch_id)
    used = await rows.resources(conn, [o["withdrawal_id"] for o in outputs])
    return batch_view(batch, outputs, approvals, quorum, used)


async def list_batches(
    conn: asyncpg.Connection,
    quorum: int,
    *,
    network: str | None = None,
    asset: str | None = None,
    status: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """``{"batches": [...], "last_id": ...}``: those with an id below ``before_id``, newest
    first, each with its approvals (not its outputs: ``get_batch`` shows those)."""
    if status is not None and status not in {s.value for s in BatchStatus}:
        raise ValidationError(f"unknown status {status!r}")
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"'limit' must be an integer from 1 to {MAX_PAGE}")
    found = await batch_rows.search(
        conn, network=network, asset=asset, status=status, before_id=before_id, limit=limit + 1
    )
    page = found[:limit]
    approvals = await batch_rows.approvals_of(conn, [b["id"] for b in page])
    items = []
    for b in page:
        view = batch_view(b, [], approvals.get(b["id"], []), quorum)
        del view["outputs"]
        items.append(view)
    return {"batches": items, "last_id": page[-1]["id"] if len(found) > limit else None}
