"""Withdrawal rows and their history. Every function runs inside the caller's transaction;
status changes go through ``chaingate.withdrawals.status.record_status``, which checks them
against the state machine first."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from chaingate.store.paging import keyset_page

_COLUMNS = """w.id, w.request_id, w.request_hash, w.user_id, w.network, w.asset, w.destination,
    w.amount, w.status, w.batch_id, w.txid, w.fee, w.confirmations, w.failure_reason,
    w.requested_by, w.created_at, w.updated_at"""


@dataclass(frozen=True, slots=True)
class NewWithdrawal:
    request_id: str
    request_hash: str
    user_id: str
    network: str
    asset: str
    destination: str
    amount: int
    requested_by: str


async def insert(conn: asyncpg.Connection, new: NewWithdrawal) -> asyncpg.Record | None:
    """The new row, or None when ``request_id`` is taken (a repeat or a reuse)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""INSERT INTO withdrawals AS w (request_id, request_hash, user_id, network, asset,
                                          destination, amount, status, requested_by)
            VALUES ($1, $2, $3, $4, $5, $6, $7, 'requested', $8)
            ON CONFLICT (request_id) DO NOTHING
            RETURNING {_COLUMNS}""",
        new.request_id,
        new.request_hash,
        new.user_id,
        new.network,
        new.asset,
        new.destination,
        new.amount,
        new.requested_by,
    )
    return row


async def by_request_id(conn: asyncpg.Connection, request_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM withdrawals w WHERE w.request_id = $1", request_id
    )
    return row


async def get(
    conn: asyncpg.Connection, withdrawal_id: int, *, for_update: bool = False
) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM withdrawals w WHERE w.id = $1{lock}", withdrawal_id
    )
    return row


async def of_batch(
    conn: asyncpg.Connection, batch_id: int, *, for_update: bool = False
) -> list[asyncpg.Record]:
    lock = " FOR UPDATE" if for_update else ""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {_COLUMNS} FROM withdrawals w WHERE w.batch_id = $1 ORDER BY w.id{lock}",
        batch_id,
    )
    return rows


async def lock_user_asset(conn: asyncpg.Connection, user_id: str, network: str, asset: str) -> None:
    """Hold the user's intake lock for ``asset`` until the caller's transaction ends."""
    await conn.execute(
        """INSERT INTO withdrawal_intake_locks (user_id, network, asset) VALUES ($1, $2, $3)
           ON CONFLICT DO NOTHING""",
        user_id,
        network,
        asset,
    )
    await conn.execute(
        """SELECT 1 FROM withdrawal_intake_locks
           WHERE user_id = $1 AND network = $2 AND asset = $3 FOR UPDATE""",
        user_id,
        network,
        asset,
    )


async def withdrawn_since(
    conn: asyncpg.Connection,
    user_id: str,
    network: str,
    asset: str,
    since: datetime,
    statuses: Sequence[str],
) -> int:
    """What ``user_id`` asked to withdraw of ``asset`` since ``since`` and still counts."""
    total = await conn.fetchval(
        """SELECT COALESCE(sum(amount), 0) FROM withdrawals
           WHERE user_id = $1 AND network = $2 AND asset = $3 AND created_at > $4
             AND status = ANY($5::text[])""",
        user_id,
        network,
        asset,
        since,
        list(statuses),
    )
    return int(total)


async def pending_for_batch(
    conn: asyncpg.Connection, network: str, asset: str, limit: int
) -> list[asyncpg.Record]:
    """Requested withdrawals of one network and asset, oldest first, locked for batching.
    SKIP LOCKED: a withdrawal another transaction is changing (cancelling) is left out."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM withdrawals w
            WHERE w.network = $1 AND w.asset = $2 AND w.status = 'requested'
            ORDER BY w.id LIMIT $3
            FOR UPDATE SKIP LOCKED""",
        network,
        asset,
        limit,
    )
    return rows


async def set_status(
    conn: asyncpg.Connection,
    withdrawal_id: int,
    status: str,
    *,
    batch_id: int | None,
    txid: str | None,
    fee: int | None,
    confirmations: int | None,
    failure_reason: str | None,
) -> asyncpg.Record:
    """Write a checked status change. ``batch_id`` is written as given (None detaches);
    ``txid``, ``fee`` and ``confirmations`` only when given."""
    row: asyncpg.Record = await conn.fetchrow(
        f"""UPDATE withdrawals w SET status = $2, batch_id = $3,
                   txid = COALESCE($4, w.txid), fee = COALESCE($5, w.fee),
                   confirmations = COALESCE($6, w.confirmations),
                   failure_reason = COALESCE($7, w.failure_reason), updated_at = now()
            WHERE w.id = $1 RETURNING {_COLUMNS}""",
        withdrawal_id,
        status,
        batch_id,
        txid,
        fee,
        confirmations,
        failure_reason,
    )
    return row


async def set_progress(
    conn: asyncpg.Connection,
    withdrawal_id: int,
    *,
    txid: str | None = None,
    fee: int | None = None,
    confirmations: int | None = None,
) -> asyncpg.Record | None:
    """Update what the tracker learns without a status change (confirmations, the txid of a
    replacement, the fee once mined)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""UPDATE withdrawals w SET txid = COALESCE($2, w.txid), fee = COALESCE($3, w.fee),
                   confirmations = COALESCE($4, w.confirmations), updated_at = now()
            WHERE w.id = $1 RETURNING {_COLUMNS}""",
        withdrawal_id,
        txid,
        fee,
        confirmations,
    )
    return row


async def add_history(
    conn: asyncpg.Connection,
    withdrawal_id: int,
    from_status: str | None,
    to_status: str,
    actor: str,
    reason: str | None,
    details: dict[str, Any],
) -> int:
    """Append one history row; how many times the withdrawal has now entered ``to_status``."""
    occurrence = await conn.fetchval(
        """WITH added AS (
               INSERT INTO withdrawal_history (withdrawal_id, from_status, to_status, actor,
                                               reason, details)
               VALUES ($1, $2, $3, $4, $5, $6::text::jsonb))
           SELECT count(*) + 1 FROM withdrawal_history
           WHERE withdrawal_id = $1 AND to_status = $3""",
        withdrawal_id,
        from_status,
        to_status,
        actor,
        reason,
        json.dumps(details),
    )
    return int(occurrence)


async def history(conn: asyncpg.Connection, ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    rows = await conn.fetch(
        """SELECT withdrawal_id, from_status, to_status, actor, reason, at
           FROM withdrawal_history WHERE withdrawal_id = ANY($1::bigint[])
           ORDER BY withdrawal_id, id""",
        list(ids),
    )
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for r in rows:
        out[r["withdrawal_id"]].append(
            {
                "from": r["from_status"],
                "status": r["to_status"],
                "at": r["at"],
                "actor": r["actor"],
                "reason": r["reason"],
            }
        )
    return out


async def resources(conn: asyncpg.Connection, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """What the settled transaction of each withdrawal consumed, by withdrawal id (TRON: the
    tracker records its receipt; withdrawals without a settled TRON transaction are absent)."""
    rows = await conn.fetch(
        """SELECT DISTINCT ON (withdrawal_id) withdrawal_id, energy_used, net_usage,
                  net_fee::text AS net_fee
             FROM withdrawal_txs
            WHERE withdrawal_id = ANY($1::bigint[]) AND net_usage IS NOT NULL
            ORDER BY withdrawal_id, id DESC""",
        list(ids),
    )
    return {
        r["withdrawal_id"]: {
            "energy_used": r["energy_used"],
            "bandwidth_used": r["net_usage"],
            "bandwidth_fee": r["net_fee"],
        }
        for r in rows
    }


async def search(
    conn: asyncpg.Connection,
    *,
    user_id: str | None,
    network: str | None,
    asset: str | None,
    status: str | None,
    before_id: int | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Newest first; ``before_id`` is the cursor (the last id of the previous page)."""
    filters = (("w.user_id", user_id), ("w.network", network), ("w.asset", asset),
               ("w.status", status))  # fmt: skip
    sql, args = keyset_page(
        f"SELECT {_COLUMNS} FROM withdrawals w", "w.id", filters, before_id, limit
    )
    rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
    return rows
