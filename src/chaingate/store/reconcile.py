"""Balance reconciliation: the addresses to check, the balances deposits explain, the last check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from chaingate.domain import AddressRow
from chaingate.store.addresses import addresses_after


@dataclass(frozen=True, slots=True)
class CheckState:
    """What the last check of one address found and what ops was already alerted about."""

    height: int
    actual: int
    expected: int
    alerted_excess: int
    alerted_shortfall: int


@dataclass(frozen=True, slots=True)
class CheckResult:
    address_id: int
    network: str
    asset: str
    height: int
    block_hash: str | None
    actual: int
    expected: int
    alerted_excess: int
    alerted_shortfall: int


async def next_chunk(
    conn: asyncpg.Connection, network: str, size: int
) -> tuple[int, list[AddressRow]]:
    """The next ``size`` issued addresses of ``network`` after the stored rotation point (from
    the start again once the end is reached), and the rotation point they were read after."""
    after = await conn.fetchval(
        "SELECT after_address_id FROM reconcile_progress WHERE network = $1", network
    )
    after = int(after or 0)
    rows = await addresses_after(conn, network, after, size)
    if not rows and after > 0:
        rows = await addresses_after(conn, network, 0, size)
    return after, rows


async def advance(
    conn: asyncpg.Connection, network: str, expected_after: int, new_after: int, wrapped: bool
) -> bool:
    """Move the rotation point by compare-and-set; False when another instance moved it first
    (its round covered the same chunk: nothing is lost, the point is simply not moved twice)."""
    await conn.execute(
        "INSERT INTO reconcile_progress (network) VALUES ($1) ON CONFLICT DO NOTHING", network
    )
    done = await conn.fetchval(
        """UPDATE reconcile_progress
           SET after_address_id = $3, sweeps = sweeps + $4::int, updated_at = now()
           WHERE network = $1 AND after_address_id = $2 RETURNING 1""",
        network,
        expected_after,
        new_after,
        1 if wrapped else 0,
    )
    return done is not None


async def expected_native_balances(
    conn: asyncpg.Connection, network: str, asset: str, keys: Sequence[str], height: int
) -> dict[str, int]:
    """What the recorded history says each address (match key) holds at block ``height``.

    Today that is the sum of native deposits in canonical blocks up to ``height`` whose value
    really moved on-chain: seen / confirming / credited, and rejected ones except ``failed_tx``
    (dust and disabled-asset deposits did arrive). Orphaned and reversed rows are not on the
    canonical chain. Deposit addresses never send in this build; when sweeps or withdrawals from
    deposit addresses exist, their outflows (value and gas) must be subtracted HERE, or every
    swept address will raise a ``balance_shortfall``.
    """
    rows = await conn.fetch(
        """SELECT to_key, sum(amount) AS total FROM deposits
           WHERE network = $1 AND asset = $2 AND contract IS NULL
             AND to_key = ANY($3::text[]) AND block_number <= $4
             AND (status IN ('seen', 'confirming', 'credited')
                  OR (status = 'rejected' AND reason <> 'failed_tx'))
           GROUP BY to_key""",
        network,
        asset,
        list(keys),
        height,
    )
    totals = {str(r["to_key"]): int(r["total"]) for r in rows}
    return {key: totals.get(key, 0) for key in keys}


async def last_checks(
    conn: asyncpg.Connection, address_ids: Sequence[int], asset: str
) -> dict[int, CheckState]:
    rows = await conn.fetch(
        """SELECT address_id, height, actual, expected, alerted_excess, alerted_shortfall
           FROM reconcile_balances WHERE address_id = ANY($1::bigint[]) AND asset = $2""",
        list(address_ids),
        asset,
    )
    return {
        int(r["address_id"]): CheckState(
            int(r["height"]),
            int(r["actual"]),
            int(r["expected"]),
            int(r["alerted_excess"]),
            int(r["alerted_shortfall"]),
        )
        for r in rows
    }


async def record_checks(conn: asyncpg.Connection, results: Sequence[CheckResult]) -> None:
    await conn.executemany(
        """INSERT INTO reconcile_balances (address_id, asset, network, height, block_hash, actual,
                                          expected, alerted_excess, alerted_shortfall)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (address_id, asset) DO UPDATE SET
               height = excluded.height, block_hash = excluded.block_hash,
               actual = excluded.actual, expected = excluded.expected,
               alerted_excess = excluded.alerted_excess,
               alerted_shortfall = excluded.alerted_shortfall, checked_at = now()""",
        [
            (
                r.address_id,
                r.asset,
                r.network,
                r.height,
                r.block_hash,
                r.actual,
                r.expected,
                r.alerted_excess,
                r.alerted_shortfall,
            )
            for r in results
        ],
    )
