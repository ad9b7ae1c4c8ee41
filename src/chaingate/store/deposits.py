"""Deposit rows and their state changes. Every function runs inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from chaingate.domain import DepositInput
from chaingate.store.paging import keyset_page

# A transaction mined (again) counts for what its NEW block says: a row that is seen, orphaned,
# reversed, or was decided in another block takes the new sighting whole (recipient, user,
# asset, amount, status, reason), never what it remembered. A reversed row gets a new credit
# generation so its next credit carries a new idempotency key. Credited rows never change here:
# a rollback (reorg) or ``reverse_changed`` reverses them first, explicitly. A mempool sighting
# never touches a row that is in a block (confirming or rejected there).
_COLUMNS_IN = (
    "network",
    "txid",
    "position",
    "to_key",
    "amount",
    "status",
    "asset",
    "contract",
    "decimals",
    "address_id",
    "user_id",
    "block_number",
    "block_hash",
    "reason",
    "required_confirmations",
    "coinbase",
    "confirmations",
)
# The rows of one upsert are COPied (binary) into a temporary table dropped at commit, then
# merged by one statement: a catch-up range holds thousands of deposits, and neither a round per
# row nor array parameters (asyncpg checks every array element's type) keep up with the node.
_STAGE = """
CREATE TEMP TABLE deposits_in (
    network text, txid text, position text, to_key text, amount numeric(78, 0), status text,
    asset text, contract text, decimals integer, address_id bigint, user_id text,
    block_number bigint, block_hash text, reason text, required_confirmations integer,
    coinbase boolean, confirmations integer
) ON COMMIT DROP
"""
_UPSERT = f"""
INSERT INTO deposits ({", ".join(_COLUMNS_IN)})
SELECT * FROM deposits_in
ON CONFLICT (network, txid, position) DO UPDATE SET
    to_key = excluded.to_key,
    amount = excluded.amount,
    asset = excluded.asset,
    contract = excluded.contract,
    decimals = excluded.decimals,
    address_id = excluded.address_id,
    user_id = excluded.user_id,
    block_number = excluded.block_number,
    block_hash = excluded.block_hash,
    status = excluded.status,
    reason = excluded.reason,
    required_confirmations = excluded.required_confirmations,
    coinbase = excluded.coinbase,
    confirmations = excluded.confirmations,
    credit_generation = deposits.credit_generation
        + CASE WHEN deposits.status = 'reversed' THEN 1 ELSE 0 END,
    updated_at = now()
WHERE deposits.status <> 'credited'
  AND NOT (excluded.block_hash IS NULL AND deposits.status IN ('confirming', 'rejected'))
  AND NOT (deposits.status = 'seen' AND excluded.status = 'seen')
  AND (deposits.status IN ('seen', 'orphaned', 'reversed')
       OR deposits.block_hash IS DISTINCT FROM excluded.block_hash)
"""

# Credited rows that a block contradicts: another recipient, user, asset, contract or amount at
# the same (txid, position), or the transaction now failed. Only chain evidence counts here: a
# rejection by configuration (dust limit raised, deposits switched off) never takes back a
# credit.
_REVERSE_CHANGED = """
UPDATE deposits d SET status = 'reversed', reason = 'content_changed', updated_at = now()
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[], $6::text[],
            $7::text[], $8::bigint[], $9::text[], $10::text[])
     AS n(network, txid, position, to_key, amount, asset, contract, address_id, block_hash,
          reason)
WHERE d.network = n.network AND d.txid = n.txid AND d.position = n.position
  AND d.status = 'credited' AND n.block_hash IS NOT NULL
  AND ((d.to_key, d.amount, d.asset, d.contract, d.address_id)
           IS DISTINCT FROM (n.to_key, n.amount, n.asset, n.contract, n.address_id)
       OR n.reason IN ('failed_tx', 'no_transfer_event'))
RETURNING d.*, n.to_key AS new_to_key, n.amount AS new_amount, n.asset AS new_asset,
          n.block_hash AS new_block_hash
"""


async def reverse_changed(
    conn: asyncpg.Connection, rows: Sequence[DepositInput]
) -> list[asyncpg.Record]:
    """Reverse the credited deposits that ``rows`` (a new block's view) contradict; the
    reversed rows, old content and ``new_*`` beside it. ``upsert`` then revives them."""
    mined = [r for r in rows if r.block_hash is not None]
    if not mined:
        return []
    # A catch-up range brings thousands of new rows and almost never one already credited:
    # find those by key first, and compare content only for them.
    credited = await conn.fetch(
        """SELECT d.network, d.txid, d.position FROM deposits d
           JOIN unnest($1::text[], $2::text[], $3::text[]) AS n(network, txid, position)
             ON d.network = n.network AND d.txid = n.txid AND d.position = n.position
           WHERE d.status = 'credited'""",
        [r.network for r in mined],
        [r.txid for r in mined],
        [r.position for r in mined],
    )
    if not credited:
        return []
    keys = {(c["network"], c["txid"], c["position"]) for c in credited}
    mined = [r for r in mined if (r.network, r.txid, r.position) in keys]
    return list(
        await conn.fetch(
            _REVERSE_CHANGED,
            [r.network for r in mined],
            [r.txid for r in mined],
            [r.position for r in mined],
            [r.to_key for r in mined],
            [r.amount for r in mined],
            [r.asset for r in mined],
            [r.contract for r in mined],
            [r.address_id for r in mined],
            [r.block_hash for r in mined],
            [r.reason for r in mined],
        )
    )


async def upsert(
    conn: asyncpg.Connection, rows: Sequence[DepositInput], *, verified_tip: int | None = None
) -> None:
    """Record ``rows`` (see _UPSERT) in one merge.

    ``verified_tip``: the block the caller's cursor moves to in this transaction (the scanned,
    linked chain). A confirming row then starts with the confirmations it has on that chain, as
    ``refresh_confirmations`` would set them: at catch-up most rows are due at once, and a
    second write of every row only to count its confirmations cost as much as the insert."""
    # One statement cannot update a row twice (ON CONFLICT): a repeated (txid, position) in one
    # batch keeps its first sighting, as the row-by-row upsert did (the repeat changed nothing).
    unique = list({(r.network, r.txid, r.position): r for r in reversed(rows)}.values())[::-1]
    if not unique:
        return
    async with conn.transaction():  # a savepoint inside the caller's transaction
        await conn.execute(_STAGE)
        await conn.copy_records_to_table(
            "deposits_in",
            records=[
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
                    _confirmations(r, verified_tip),
                )
                for r in unique
            ],
            columns=list(_COLUMNS_IN),
        )
        await conn.execute(_UPSERT)
        await conn.execute("DROP TABLE deposits_in")  # a second upsert in this transaction


def _confirmations(row: DepositInput, verified_tip: int | None) -> int:
    if verified_tip is None or row.block_number is None or row.status.value != "confirming":
        return 0
    return max(0, verified_tip - row.block_number + 1)


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


async def credited_above(conn: asyncpg.Connection, network: str, height: int) -> bool:
    """Would a rollback to ``height`` reverse a credit?"""
    return bool(
        await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM deposits
                              WHERE network = $1 AND block_number > $2 AND status = 'credited')""",
            network,
            height,
        )
    )


async def refresh_confirmations(conn: asyncpg.Connection, network: str, head: int) -> None:
    await conn.execute(
        """UPDATE deposits SET confirmations = GREATEST(0, $2 - block_number + 1)
           WHERE network = $1 AND status = 'confirming'
             AND confirmations IS DISTINCT FROM GREATEST(0, $2 - block_number + 1)""",
        network,
        head,
    )


# The ledger credit's idempotency key, as ledger.messages.credit_key spells it (the watcher
# checks every key this returns against that function, so the two cannot drift apart).
_CREDIT_KEY_SQL = """'credit:' || network || ':' || txid || ':' || position
    || CASE WHEN credit_generation <> 0 THEN ':g' || credit_generation ELSE '' END"""


async def credit_due(
    conn: asyncpg.Connection, network: str, scanned_to: int, finalized: int | None
) -> list[asyncpg.Record]:
    """Mark credited, with their credit key, the confirming deposits that have enough
    confirmations inside the verified (scanned) chain; the rows as credited, in block order.
    One statement: at catch-up thousands come due at once, and selecting them, locking them
    and updating them by id wrote every row twice."""
    rows = await conn.fetch(
        f"""UPDATE deposits SET status = 'credited', credit_key = {_CREDIT_KEY_SQL},
                                credited_at = now(), updated_at = now()
            WHERE network = $1 AND status = 'confirming'
              AND confirmations >= required_confirmations
              AND block_number <= $2 AND ($3::bigint IS NULL OR block_number <= $3)
            RETURNING *""",
        network,
        scanned_to,
        finalized,
    )
    return sorted(rows, key=lambda r: (r["block_number"], r["id"]))


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


@dataclass(frozen=True, slots=True)
class DepositFilter:
    user_id: str | None = None
    network: str | None = None
    status: str | None = None
    txid: str | None = None
    asset: str | None = None
    before_id: int | None = None  # keyset pagination: ids below this one (newest first)


# The ledger message that speaks for a deposit: its credit, or once reversed the reversal.
# Only credited and reversed rows have one in force (a re-mined row keeps its old credit_key
# until it is credited anew, so its state would be the old credit's). The reversal's key is
# 'reversal:' + credit key (watcher/loop.py).
_LIST = """
SELECT d.id, d.network, d.txid, d.position, d.asset, d.contract, d.decimals, d.user_id,
       d.amount, d.block_number, d.block_hash, d.status, d.reason, d.confirmations,
       d.required_confirmations, d.created_at, d.credited_at,
       o.kind AS ledger_message,
       CASE WHEN o.id IS NULL THEN NULL
            WHEN o.delivered_at IS NOT NULL THEN 'delivered'
            WHEN o.next_attempt_at = 'infinity' THEN 'parked'
            ELSE 'pending' END AS ledger,
       o.delivered_at
FROM deposits d
LEFT JOIN ledger_outbox o ON d.status IN ('credited', 'reversed') AND o.idempotency_key =
     CASE WHEN d.status = 'reversed' THEN 'reversal:' || d.credit_key ELSE d.credit_key END
"""


def list_query(where: DepositFilter, limit: int) -> tuple[str, list[Any]]:
    """The SQL of ``list_deposits`` and its arguments (only the filters given: index scans)."""
    filters = (
        ("d.user_id", where.user_id),
        ("d.network", where.network),
        ("d.status", where.status),
        ("d.txid", where.txid),
        ("d.asset", where.asset),
    )
    return keyset_page(_LIST, "d.id", filters, where.before_id, limit)


async def list_deposits(
    conn: asyncpg.Connection, where: DepositFilter, limit: int = 100
) -> list[dict[str, Any]]:
    """Newest first, at most ``limit``, each with its ledger delivery state."""
    sql, args = list_query(where, limit)
    return [dict(r) for r in await conn.fetch(sql, *args)]
