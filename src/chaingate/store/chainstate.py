"""Watcher progress: the cursor and the recent canonical block hashes of each network."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from chaingate.domain import BlockRef
from chaingate.errors import StoreError


async def get_cursor(conn: asyncpg.Connection, network: str) -> int | None:
    value = await conn.fetchval("SELECT height FROM chain_cursor WHERE network = $1", network)
    return None if value is None else int(value)


async def init_cursor(conn: asyncpg.Connection, network: str, height: int) -> int:
    """Create the cursor if absent; return the cursor in force (another instance may have won)."""
    await conn.execute(
        "INSERT INTO chain_cursor (network, height) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        network,
        height,
    )
    cursor = await get_cursor(conn, network)
    assert cursor is not None
    return cursor


async def move_cursor(conn: asyncpg.Connection, network: str, expected: int, height: int) -> None:
    """Compare-and-set: a second writer on the same network is a bug we refuse, not race."""
    done = await conn.fetchval(
        """UPDATE chain_cursor SET height = $3, updated_at = now()
           WHERE network = $1 AND height = $2 RETURNING 1""",
        network,
        expected,
        height,
    )
    if done is None:
        raise StoreError(
            f"{network}: cursor moved under us (expected {expected}); another watcher?"
        )


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
    await conn.executemany(
        """INSERT INTO block_hashes (network, number, hash, parent_hash) VALUES ($1, $2, $3, $4)
           ON CONFLICT (network, number) DO UPDATE
           SET hash = excluded.hash, parent_hash = excluded.parent_hash""",
        [(network, b.number, b.hash, b.parent_hash) for b in blocks],
    )
    if blocks:
        await conn.execute(
            "DELETE FROM block_hashes WHERE network = $1 AND number <= $2",
            network,
            blocks[-1].number - keep,
        )


async def drop_blocks_above(conn: asyncpg.Connection, network: str, height: int) -> None:
    await conn.execute(
        "DELETE FROM block_hashes WHERE network = $1 AND number > $2", network, height
    )
    await conn.execute(
        "UPDATE chain_cursor SET height = $2, updated_at = now() WHERE network = $1",
        network,
        height,
    )


async def cursors(conn: asyncpg.Connection) -> dict[str, dict[str, Any]]:
    """Every network's cursor: the last fully processed height and when it moved."""
    rows = await conn.fetch("SELECT network, height, updated_at FROM chain_cursor")
    return {r["network"]: dict(r) for r in rows}
