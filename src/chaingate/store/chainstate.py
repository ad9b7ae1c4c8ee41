"""Watcher progress: the cursor and the recent canonical block hashes of each network."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from chaingate.domain import BlockRef
from chaingate.errors import FencedOut, StoreError
from chaingate.store import leases
from chaingate.store.leases import Lease


async def get_cursor(conn: asyncpg.Connection, network: str) -> int | None:
    value = await conn.fetchval("SELECT height FROM chain_cursor WHERE network = $1", network)
    return None if value is None else int(value)


async def init_cursor(conn: asyncpg.Connection, lease: Lease, network: str, height: int) -> int:
    """Create the cursor if absent; return the cursor in force (another instance may have won)."""
    async with conn.transaction():
        await leases.check(conn, lease)
        await conn.execute(
            """INSERT INTO chain_cursor (network, height, epoch) VALUES ($1, $2, $3)
               ON CONFLICT DO NOTHING""",
            network,
            height,
            lease.epoch,
        )
    cursor = await get_cursor(conn, network)
    assert cursor is not None
    return cursor


async def move_cursor(
    conn: asyncpg.Connection, lease: Lease, network: str, expected: int, height: int
) -> None:
    """Fence a write transaction and move the cursor from ``expected`` to ``height``.

    The lease must still hold (leases.check), and the cursor row is compared and set on both
    its height and the epoch of its last writer: a leader that read the cursor before someone
    else moved it, or whose epoch is older than the last writer's, is refused. Moving it to
    where it is (``height == expected``) fences a transaction that only writes beside it, such
    as crediting: the row stays locked until that transaction ends.
    """
    await leases.check(conn, lease)
    done = await conn.fetchval(
        """UPDATE chain_cursor SET height = $3, epoch = $4, updated_at = now()
           WHERE network = $1 AND height = $2 AND epoch <= $4 RETURNING 1""",
        network,
        expected,
        height,
        lease.epoch,
    )
    if done is None:
        row = await conn.fetchrow(
            "SELECT height, epoch FROM chain_cursor WHERE network = $1", network
        )
        if row is not None and int(row["epoch"]) > lease.epoch:
            raise FencedOut(
                f"{network}: cursor written by epoch {row['epoch']}, ours is {lease.epoch}"
            )
        found = None if row is None else int(row["height"])
        raise StoreError(f"{network}: cursor moved under us (expected {expected}, is {found})")


async def rewind(
    conn: asyncpg.Connection, lease: Lease, network: str, expected: int, fork: int
) -> None:
    """A reorg: forget the block hashes above ``fork`` and move the cursor back from
    ``expected`` to it, fenced and compared-and-set like every cursor move."""
    await move_cursor(conn, lease, network, expected, fork)
    await conn.execute("DELETE FROM block_hashes WHERE network = $1 AND number > $2", network, fork)


async def stored_hash(conn: asyncpg.Connection, network: str, number: int) -> str | None:
    value = await conn.fetchval(
        "SELECT hash FROM block_hashes WHERE network = $1 AND number = $2", network, number
    )
    return None if value is None else str(value)


async def stored_hashes_desc(
    conn: asyncpg.Connection, network: str, below_or_at: int
) -> list[tuple[int, str]]:
    rows = await conn.fetch(
        """SELECT number, hash FROM block_hashes WHERE network = $1 AND number <= $2
           ORDER BY number DESC""",
        network,
        below_or_at,
    )
    return [(int(r["number"]), str(r["hash"])) for r in rows]


async def record_blocks(
    conn: asyncpg.Connection, network: str, blocks: Sequence[BlockRef], keep: int
) -> None:
    if not blocks:
        return
    await conn.execute(
        """INSERT INTO block_hashes (network, number, hash, parent_hash)
           SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[])
           ON CONFLICT (network, number) DO UPDATE
           SET hash = excluded.hash, parent_hash = excluded.parent_hash""",
        network,
        [b.number for b in blocks],
        [b.hash for b in blocks],
        [b.parent_hash for b in blocks],
    )
    await conn.execute(
        "DELETE FROM block_hashes WHERE network = $1 AND number <= $2",
        network,
        blocks[-1].number - keep,
    )


async def cursors(conn: asyncpg.Connection) -> dict[str, dict[str, Any]]:
    """Every network's cursor: the last fully processed height and when it moved."""
    rows = await conn.fetch("SELECT network, height, updated_at FROM chain_cursor")
    return {r["network"]: dict(r) for r in rows}
