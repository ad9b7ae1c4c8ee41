"""The signer's reads and writes: its job queue, what a batch says, and the signed transactions.

Everything the signer may touch is here, and it is what the ``chaingate_signer`` database role
(deploy/sql/signer_role.sql) is granted: read the batch tables, work ``signer_jobs`` through
the leased queue, insert ``withdrawal_txs`` and alerts, hold allocator leases. Statuses and
ledger events are written by the broadcaster side, not by the signer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from chaingate.domain.approvals import Approval
from chaingate.domain.batch_content import BatchOutput
from chaingate.signer.checks import BatchRecord, WithdrawalRecord
from chaingate.store.queue import QueueTable

# A job becomes claimable once the planner gave it a plan (fees, gas, the pending nonce).
SIGNER_JOBS = QueueTable(
    name="signer_jobs",
    returning="q.id, q.attempts, q.batch_id, q.plan::text AS plan, q.planned_at",
    eligible="q.plan IS NOT NULL",
)

# Same-nonce replacements the tracker asked for (migration 009c).
SIGNER_REPLACEMENTS = QueueTable(
    name="signer_replacements",
    returning="q.id, q.attempts, q.tx_id, q.plan::text AS plan, q.planned_at",
)


@dataclass(frozen=True, slots=True)
class BatchMaterial:
    """Everything the database says about one batch, exactly as stored."""

    batch: BatchRecord
    outputs: tuple[BatchOutput, ...]
    withdrawals: dict[int, WithdrawalRecord]
    approvals: tuple[Approval, ...]
    signed_txs: int  # withdrawal_txs rows already recorded for the batch


@dataclass(frozen=True, slots=True)
class SignedRow:
    batch_id: int
    withdrawal_id: int
    network: str
    from_address: str
    nonce: int | None  # None on TRON (no nonces)
    raw_tx: str
    txid: str
    fee_cap: int
    max_fee_per_gas: int | None  # EVM
    max_priority_fee_per_gas: int | None
    gas_limit: int | None
    signer_epoch: int
    expiration_ms: int | None = None  # TRON: fixed in the signed bytes
    ref_block_number: int | None = None
    ref_block_id: str | None = None
    fee_limit: int | None = None


async def load_batch(conn: asyncpg.Connection, batch_id: int) -> BatchMaterial | None:
    row = await conn.fetchrow(
        """SELECT id, network, asset, chain_id, contract, decimals, fee_cap::text AS fee_cap,
                  content_hash, content_version, maker, made_at, maker_seal, status
             FROM batches WHERE id = $1""",
        batch_id,
    )
    if row is None:
        return None
    batch = BatchRecord(
        id=row["id"],
        network=row["network"],
        asset=row["asset"],
        chain_id=row["chain_id"],
        contract=row["contract"],
        decimals=row["decimals"],
        fee_cap=int(row["fee_cap"]),
        content_hash=row["content_hash"],
        content_version=row["content_version"],
        maker=row["maker"],
        made_at=row["made_at"],
        maker_seal=row["maker_seal"],
        status=row["status"],
    )
    outputs = tuple(
        BatchOutput(r["withdrawal_id"], r["destination"], int(r["amount"]))
        for r in await conn.fetch(
            """SELECT withdrawal_id, destination, amount::text AS amount
                 FROM batch_outputs WHERE batch_id = $1 ORDER BY withdrawal_id""",
            batch_id,
        )
    )
    withdrawals = {
        r["id"]: WithdrawalRecord(
            id=r["id"],
            network=r["network"],
            asset=r["asset"],
            destination=r["destination"],
            amount=int(r["amount"]),
            batch_id=r["batch_id"],
            status=r["status"],
        )
        for r in await conn.fetch(
            """SELECT id, network, asset, destination, amount::text AS amount, batch_id, status
                 FROM withdrawals WHERE id = ANY($1::bigint[])""",
            [o.withdrawal_id for o in outputs],
        )
    }
    approvals = tuple(
        Approval(r["batch_id"], r["content_hash"], r["principal"], r["approved_at"], r["seal"])
        for r in await conn.fetch(
            """SELECT batch_id, content_hash, principal, approved_at, seal
                 FROM approvals WHERE batch_id = $1 ORDER BY id""",
            batch_id,
        )
    )
    signed = await conn.fetchval(
        "SELECT count(*) FROM withdrawal_txs WHERE batch_id = $1", batch_id
    )
    return BatchMaterial(batch, outputs, withdrawals, approvals, int(signed))


async def signed_in_last_day(conn: asyncpg.Connection, network: str, asset: str) -> int:
    """What the signer signed of ``asset`` in the last 24 hours (each withdrawal once, however
    often it was replaced)."""
    total = await conn.fetchval(
        """SELECT coalesce(sum(bo.amount), 0)::text
             FROM batch_outputs bo JOIN batches b ON b.id = bo.batch_id
            WHERE b.network = $1 AND b.asset = $2
              AND EXISTS (SELECT 1 FROM withdrawal_txs t
                           WHERE t.batch_id = bo.batch_id AND t.withdrawal_id = bo.withdrawal_id
                             AND t.created_at > now() - interval '24 hours')""",
        network,
        asset,
    )
    return int(total)


@dataclass(frozen=True, slots=True)
class NonceState:
    """The nonces recorded for one hot address: the next free one, and the holes (recorded
    nonces should be contiguous; a hole means a row was removed and needs an operator)."""

    next_nonce: int | None  # None: nothing recorded yet
    holes: tuple[int, ...]


async def nonce_state(conn: asyncpg.Connection, network: str, address: str) -> NonceState:
    rows = await conn.fetch(
        """SELECT DISTINCT nonce FROM withdrawal_txs
            WHERE network = $1 AND from_address = $2 AND nonce IS NOT NULL ORDER BY nonce""",
        network,
        address,
    )
    nonces = [int(r["nonce"]) for r in rows]
    if not nonces:
        return NonceState(None, ())
    present = set(nonces)
    holes = tuple(n for n in range(nonces[0], nonces[-1]) if n not in present)
    return NonceState(nonces[-1] + 1, holes[:50])


async def insert_signed(conn: asyncpg.Connection, rows: Sequence[SignedRow]) -> None:
    await conn.executemany(
        """INSERT INTO withdrawal_txs (batch_id, withdrawal_id, network, from_address, nonce,
                                       raw_tx, txid, fee_cap, max_fee_per_gas,
                                       max_priority_fee_per_gas, gas_limit, signer_epoch,
                                       expiration_ms, ref_block_number, ref_block_id, fee_limit)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)""",
        [
            (
                r.batch_id,
                r.withdrawal_id,
                r.network,
                r.from_address,
                r.nonce,
                r.raw_tx,
                r.txid,
                r.fee_cap,
                r.max_fee_per_gas,
                r.max_priority_fee_per_gas,
                r.gas_limit,
                r.signer_epoch,
                r.expiration_ms,
                r.ref_block_number,
                r.ref_block_id,
                r.fee_limit,
            )
            for r in rows
        ],
    )


async def live_tx(conn: asyncpg.Connection, tx_id: int) -> asyncpg.Record | None:
    """A recorded transaction that is still the live one at its nonce (nothing replaced it
    and it is not over), or None."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """SELECT id, batch_id, withdrawal_id, network, from_address, nonce, txid, gas_limit,
                  fee_cap::text AS fee_cap, max_fee_per_gas::text AS max_fee_per_gas,
                  max_priority_fee_per_gas::text AS max_priority_fee_per_gas
             FROM withdrawal_txs
            WHERE id = $1 AND replaced_by IS NULL AND done_at IS NULL
              AND status IN ('signed', 'broadcast')""",
        tx_id,
    )
    return row


async def replace_tx(conn: asyncpg.Connection, old_id: int, new: SignedRow) -> bool:
    """Record ``new`` as the live transaction at the nonce of ``old_id`` (same transaction as
    the caller's lease check); False when ``old_id`` is no longer live. Only one live row per
    nonce may exist (a unique index), so the old row steps aside before the new one goes in."""
    stepped_aside = await conn.fetchval(
        """UPDATE withdrawal_txs SET replaced_by = id, status = 'replaced'
            WHERE id = $1 AND replaced_by IS NULL AND done_at IS NULL
              AND status IN ('signed', 'broadcast') RETURNING 1""",
        old_id,
    )
    if stepped_aside is None:
        return False
    await insert_signed(conn, [new])
    await conn.execute(
        """UPDATE withdrawal_txs SET replaced_by =
               (SELECT id FROM withdrawal_txs WHERE network = $2 AND txid = $3)
            WHERE id = $1""",
        old_id,
        new.network,
        new.txid,
    )
    return True


async def clear_plan(conn: asyncpg.Connection, job_id: int, token: int) -> None:
    """Drop a stale or unusable plan so the planner makes a new one."""
    await conn.execute(
        """UPDATE signer_jobs SET plan = NULL, planned_at = NULL, lease_token = NULL,
                                  next_attempt_at = now()
            WHERE id = $1 AND lease_token = $2 AND done_at IS NULL""",
        job_id,
        token,
    )


def plan_of(claimed: asyncpg.Record) -> dict[str, Any]:
    raw = claimed["plan"]
    value = json.loads(raw) if isinstance(raw, str) else raw
    return value if isinstance(value, dict) else {}
