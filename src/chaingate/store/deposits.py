"""Deposit rows and their state changes. Every function runs inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from chaingate.domain import DepositStatus


@dataclass(frozen=True, slots=True)
class DepositInput:
    network: str
    txid: str
    position: str
    to_key: str
    amount: int
    status: DepositStatus
    asset: str | None = None
    contract: str | None = None
    decimals: int | None = None
    address_id: int | None = None
    user_id: str | None = None
    block_number: int | None = None
    block_hash: str | None = None
    reason: str | None = None
    required_confirmations: int = 0
    coinbase: bool = False


# A row that is seen, orphaned or reversed comes back to life when its transaction shows up
# (again) in a block or the mempool; a reversed one gets a new credit generation so that its
# next credit carries a new idempotency key. Credited rows never change here: only a rollback
# (reorg) moves them, and it does so explicitly.
_UPSERT = """
INSERT INTO deposits (network, txid, position, to_key, amount, status, asset, contract, decimals,
                      address_id, user_id, block_number, block_hash, reason,
                      required_confirmations, coinbase)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
ON CONFLICT (network, txid, position) DO UPDATE SET
    block_number = excluded.block_number,
    block_hash = excluded.block_hash,
    status = CASE WHEN deposits.status IN ('seen', 'orphaned', 'reversed')
                   AND excluded.status IN ('seen', 'confirming')
                  THEN excluded.status ELSE deposits.status END,
    reason = CASE WHEN deposits.status IN ('seen', 'orphaned', 'reversed')
                   AND excluded.status IN ('seen', 'confirming')
                  THEN NULL ELSE deposits.reason END,
    credit_generation = deposits.credit_generation
        + CASE WHEN deposits.status = 'reversed' AND excluded.status IN ('seen', 'confirming')
               THEN 1 ELSE 0 END,
    updated_at = now()
WHERE deposits.status <> 'credited'
  AND NOT (deposits.status = 'seen' AND excluded.status = 'seen')
  AND (deposits.status IN ('seen', 'orphaned', 'reversed')
       OR deposits.block_hash IS DISTINCT FROM excluded.block_hash)
"""


async def upsert(conn: asyncpg.Connection, rows: Sequence[DepositInput]) -> None:
    await conn.executemany(
        _UPSERT,
        [
            (
                r.network,
                r.txid,
                r.position,
                r.to_key,
                r.amount,
                r.status.value,
                r.asset,
                r.contract,
                r.decimals,
                r.address_id,
                r.user_id,
                r.block_number,
                r.block_hash,
                r.reason,
                r.required_confirmations,
                r.coinbase,
            )
            for r in rows
        ],
    )


async def rollback_above(
    conn: asyncpg.Connection, network: str, height: int
) -> tuple[int, list[asyncpg.Record]]:
    """Blocks above ``height`` are gone: orphan what was not credited, reverse what was."""
    orphaned = await conn.fetchval(
        """WITH o AS (UPDATE deposits SET status = 'orphaned', reason = 'reorg', updated_at = now()
                      WHERE network = $1 AND block_number > $2 AND status = 'confirming'
                      RETURNING 1)
           SELECT count(*) FROM o""",
        network,
        height,
    )
    reversed_rows = await conn.fetch(
        """UPDATE deposits SET status = 'reversed', reason = 'reorg', updated_at = now()
           WHERE network = $1 AND block_number > $2 AND status = 'credited'
           RETURNING *""",
        network,
        height,
    )
    return int(orphaned), list(reversed_rows)


async def refresh_confirmations(conn: asyncpg.Connection, network: str, head: int) -> None:
    await conn.execute(
        """UPDATE deposits SET confirmations = GREATEST(0, $2 - block_number + 1)
           WHERE network = $1 AND status = 'confirming'
             AND confirmations IS DISTINCT FROM GREATEST(0, $2 - block_number + 1)""",
        network,
        head,
    )


async def due_for_credit(
    conn: asyncpg.Connection, network: str, scanned_to: int, finalized: int | None
) -> list[asyncpg.Record]:
    """Confirming deposits with enough confirmations inside the verified (scanned) chain."""
    return list(
        await conn.fetch(
            """SELECT * FROM deposits
               WHERE network = $1 AND status = 'confirming'
                 AND confirmations >= required_confirmations
                 AND block_number <= $2 AND ($3::bigint IS NULL OR block_number <= $3)
               ORDER BY block_number, id
               FOR UPDATE""",
            network,
            scanned_to,
            finalized,
        )
    )


async def mark_credited(conn: asyncpg.Connection, keys: Sequence[tuple[int, str]]) -> None:
    """Credit deposits (id, credit key) locked by ``due_for_credit`` in this transaction."""
    await conn.executemany(
        """UPDATE deposits SET status = 'credited', credit_key = $2, credited_at = now(),
                               updated_at = now()
           WHERE id = $1 AND status = 'confirming'""",
        keys,
    )


async def orphan_unseen_pending(
    conn: asyncpg.Connection, network: str, present: Collection[tuple[str, str]]
) -> list[asyncpg.Record]:
    """Mempool deposits no longer in the mempool (mined ones come back via the block scan)."""
    keys = [f"{txid}:{position}" for txid, position in present]
    return list(
        await conn.fetch(
            """UPDATE deposits SET status = 'orphaned', reason = 'dropped_from_mempool',
                                   updated_at = now()
               WHERE network = $1 AND status = 'seen' AND block_number IS NULL
                 AND NOT (txid || ':' || position = ANY($2::text[]))
               RETURNING id, txid, position""",
            network,
            keys,
        )
    )


async def list_deposits(
    conn: asyncpg.Connection,
    *,
    user_id: str | None = None,
    network: str | None = None,
    status: str | None = None,
    asset: str | None = None,
    txid: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Deposits newest first; ``before_id`` is the cursor of the next page.

    ``delivery`` is the ledger delivery state of the current credit: none (not credited),
    pending, parked or delivered.
    """
    rows = await conn.fetch(
        """SELECT d.id, d.network, d.txid, d.position, d.asset, d.contract, d.decimals, d.user_id,
                  d.amount, d.block_number, d.block_hash, d.status, d.reason, d.confirmations,
                  d.required_confirmations, d.created_at, d.credited_at,
                  CASE WHEN o.id IS NULL THEN 'none'
                       WHEN o.delivered_at IS NOT NULL THEN 'delivered'
                       WHEN o.parked_at IS NOT NULL THEN 'parked'
                       ELSE 'pending' END AS delivery
           FROM deposits d LEFT JOIN ledger_outbox o ON o.idempotency_key = d.credit_key
           WHERE ($1::text IS NULL OR d.user_id = $1) AND ($2::text IS NULL OR d.network = $2)
             AND ($3::text IS NULL OR d.status = $3) AND ($4::text IS NULL OR d.asset = $4)
             AND ($5::text IS NULL OR d.txid = $5) AND ($6::bigint IS NULL OR d.id < $6)
           ORDER BY d.id DESC LIMIT $7""",
        user_id,
        network,
        status,
        asset,
        txid,
        before_id,
        limit,
    )
    return [dict(r) for r in rows]
