"""Batch rows, the outputs their content hash covers, sealed approvals and signer jobs. Every
function runs inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from chaingate.domain.approvals import Approval
from chaingate.domain.batch_content import BatchContent, BatchOutput
from chaingate.ledger.messages import withdrawal_event_key
from chaingate.store.paging import keyset_page

_COLUMNS = """b.id, b.network, b.asset, b.chain_id, b.contract, b.decimals, b.fee_cap, b.total,
    b.output_count, b.content_hash, b.content_version, b.maker, b.made_at, b.maker_seal,
    b.status, b.approved_at, b.rejected_by, b.rejection_reason, b.failure_reason, b.updated_at"""


@dataclass(frozen=True, slots=True)
class NewBatch:
    id: int
    content: BatchContent
    content_hash: str
    content_version: int
    maker: str
    made_at: datetime
    maker_seal: str


async def next_id(conn: asyncpg.Connection) -> int:
    """A batch id drawn before the insert: the maker's seal covers it."""
    return int(await conn.fetchval("SELECT nextval(pg_get_serial_sequence('batches', 'id'))"))


async def insert(conn: asyncpg.Connection, new: NewBatch) -> None:
    c = new.content
    await conn.execute(
        """INSERT INTO batches (id, network, asset, chain_id, contract, decimals, fee_cap, total,
                                output_count, content_hash, content_version, maker, made_at,
                                maker_seal, status)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                   'pending_approval')""",
        new.id,
        c.network,
        c.asset,
        c.chain_id,
        c.contract,
        c.decimals,
        c.fee_cap,
        c.total,
        len(c.outputs),
        new.content_hash,
        new.content_version,
        new.maker,
        new.made_at,
        new.maker_seal,
    )
    await conn.executemany(
        """INSERT INTO batch_outputs (batch_id, withdrawal_id, destination, amount)
           VALUES ($1, $2, $3, $4)""",
        [(new.id, o.withdrawal_id, o.destination, o.amount) for o in c.outputs],
    )


async def get(
    conn: asyncpg.Connection, batch_id: int, *, for_update: bool = False
) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM batches b WHERE b.id = $1{lock}", batch_id
    )
    return row


async def outputs(conn: asyncpg.Connection, batch_id: int) -> list[asyncpg.Record]:
    """The outputs as the batch recorded them, with each withdrawal's user and progress."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT o.withdrawal_id, o.destination, o.amount, w.user_id, w.status, w.txid
           FROM batch_outputs o JOIN withdrawals w ON w.id = o.withdrawal_id
           WHERE o.batch_id = $1 ORDER BY o.withdrawal_id""",
        batch_id,
    )
    return rows


async def approvals(conn: asyncpg.Connection, batch_id: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT batch_id, content_hash, principal, approved_at, seal FROM approvals
           WHERE batch_id = $1 ORDER BY id""",
        batch_id,
    )
    return rows


async def approvals_of(
    conn: asyncpg.Connection, batch_ids: Sequence[int]
) -> dict[int, list[asyncpg.Record]]:
    rows = await conn.fetch(
        """SELECT batch_id, content_hash, principal, approved_at, seal FROM approvals
           WHERE batch_id = ANY($1::bigint[]) ORDER BY id""",
        list(batch_ids),
    )
    out: dict[int, list[asyncpg.Record]] = {}
    for r in rows:
        out.setdefault(r["batch_id"], []).append(r)
    return out


def as_approvals(records: Sequence[asyncpg.Record]) -> list[Approval]:
    return [
        Approval(r["batch_id"], r["content_hash"], r["principal"], r["approved_at"], r["seal"])
        for r in records
    ]


async def insert_approval(conn: asyncpg.Connection, approval: Approval) -> bool:
    """Store a sealed approval; False when this principal already approved the batch."""
    done = await conn.fetchval(
        """INSERT INTO approvals (batch_id, content_hash, principal, approved_at, seal)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (batch_id, principal) DO NOTHING RETURNING 1""",
        approval.batch_id,
        approval.content_hash,
        approval.principal,
        approval.approved_at,
        approval.seal,
    )
    return done is not None


async def queue_signer_job(conn: asyncpg.Connection, batch_id: int) -> bool:
    """Queue the batch's one signer job; False when it is queued already."""
    done = await conn.fetchval(
        "INSERT INTO signer_jobs (batch_id) VALUES ($1) ON CONFLICT (batch_id) DO NOTHING"
        " RETURNING 1",
        batch_id,
    )
    return done is not None


async def search(
    conn: asyncpg.Connection,
    *,
    network: str | None,
    asset: str | None,
    status: str | None,
    before_id: int | None,
    limit: int,
) -> list[asyncpg.Record]:
    filters = (("b.network", network), ("b.asset", asset), ("b.status", status))
    sql, args = keyset_page(f"SELECT {_COLUMNS} FROM batches b", "b.id", filters, before_id, limit)
    rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
    return rows


def content_of(batch: asyncpg.Record, outputs: Sequence[asyncpg.Record]) -> BatchContent:
    """The content of ``batch`` with ``outputs`` (rows with withdrawal_id, destination and
    amount), ready for ``content_hash``."""
    return BatchContent.of(
        network=batch["network"],
        chain_id=batch["chain_id"],
        asset=batch["asset"],
        contract=batch["contract"],
        decimals=batch["decimals"],
        outputs=[
            BatchOutput(o["withdrawal_id"], o["destination"], int(o["amount"])) for o in outputs
        ],
        fee_cap=int(batch["fee_cap"]),
    )


async def unheld(conn: asyncpg.Connection, withdrawal_ids: Sequence[int]) -> list[int]:
    """The withdrawals whose hold the ledger has not acknowledged: their first ``requested``
    event is not delivered yet (or was refused, and the withdrawal is being cancelled)."""
    keys = {withdrawal_event_key(i, "requested"): i for i in withdrawal_ids}
    delivered = await conn.fetch(
        """SELECT idempotency_key FROM ledger_outbox
           WHERE idempotency_key = ANY($1::text[]) AND delivered_at IS NOT NULL""",
        list(keys),
    )
    held = {keys[r["idempotency_key"]] for r in delivered}
    return sorted(set(withdrawal_ids) - held)


async def signer_job(conn: asyncpg.Connection, batch_id: int) -> dict[str, Any] | None:
    """The batch's signer job as ops see it (queued, done or parked), or None before quorum."""
    row = await conn.fetchrow(
        """SELECT id, created_at, attempts, done_at, parked_at, last_error
             FROM signer_jobs WHERE batch_id = $1""",
        batch_id,
    )
    return None if row is None else dict(row)


async def transactions(conn: asyncpg.Connection, batch_id: int) -> list[dict[str, Any]]:
    """The batch's signed transactions as ops see them (nonce order; a replaced one shows too)."""
    rows = await conn.fetch(
        """SELECT id, withdrawal_id, nonce, txid, status, max_fee_per_gas::text AS max_fee,
                  fee::text AS fee, confirmations, created_at, broadcast_at
             FROM withdrawal_txs WHERE batch_id = $1 ORDER BY nonce NULLS LAST, id""",
        batch_id,
    )
    return [dict(r) for r in rows]
