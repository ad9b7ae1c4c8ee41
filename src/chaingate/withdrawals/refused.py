"""What the signer refused: parked signer jobs, for ops (API, console and CLI alike).

A refused job stays parked (nothing of its batch is signed) until an operator decides: fix the
cause and un-park it, or reject the batch (``approvals.reject``: back to pending, or failed with
the funds returned to the ledger). This lists them with what that decision needs.
"""

from __future__ import annotations

from typing import Any

import asyncpg


async def refused_jobs(conn: asyncpg.Connection, limit: int = 200) -> list[dict[str, Any]]:
    """Parked signer jobs whose batch is still the signer's (not rejected yet), oldest first."""
    rows = await conn.fetch(
        """SELECT j.id, j.batch_id, j.attempts, j.parked_at, j.last_error,
                  b.network, b.asset, b.status AS batch_status, b.total::text AS total,
                  (SELECT count(*) FROM batch_outputs bo WHERE bo.batch_id = b.id) AS outputs,
                  EXISTS (SELECT 1 FROM withdrawal_txs t WHERE t.batch_id = b.id) AS signed
             FROM signer_jobs j JOIN batches b ON b.id = j.batch_id
            WHERE j.parked_at IS NOT NULL AND j.done_at IS NULL
            ORDER BY j.parked_at, j.id
            LIMIT $1""",
        limit,
    )
    return [
        {
            "job_id": r["id"],
            "batch_id": r["batch_id"],
            "network": r["network"],
            "asset": r["asset"],
            "batch_status": r["batch_status"],
            "total": r["total"],
            "outputs": r["outputs"],
            "attempts": r["attempts"],
            "parked_at": r["parked_at"].isoformat(),
            "reason": r["last_error"],
            # Nothing signed: the batch can still be rejected (funds back, or re-batched).
            "rejectable": not r["signed"] and r["batch_status"] == "approved",
        }
        for r in rows
    ]
