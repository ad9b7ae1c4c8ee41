"""network_progress rows: each watcher's head, cursor and catch-up rate, for people to read."""

from __future__ import annotations

from typing import Any

import asyncpg


async def record(
    conn: asyncpg.Connection,
    network: str,
    head: int,
    cursor: int,
    catching_up: bool,
    done: int,
    blocks_per_second: float | None,
    eta_seconds: float | None,
) -> None:
    """Upsert one network's progress (see watcher/progress.py)."""
    await conn.execute(
        """INSERT INTO network_progress AS n (network, head, cursor, catching_up, blocks_done,
                                              blocks_per_second, eta_seconds, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, now())
           ON CONFLICT (network) DO UPDATE
           SET head = excluded.head, cursor = excluded.cursor,
               catching_up = excluded.catching_up, blocks_done = excluded.blocks_done,
               blocks_per_second = excluded.blocks_per_second,
               eta_seconds = excluded.eta_seconds, updated_at = now()""",
        network,
        head,
        cursor,
        catching_up,
        done,
        blocks_per_second,
        eta_seconds,
    )


async def all_networks(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Every network's last recorded progress, by name (for GET /v1/networks and the console)."""
    rows = await conn.fetch("SELECT * FROM network_progress ORDER BY network")
    return [dict(r) for r in rows]


async def catch_up_views(conn: asyncpg.Connection) -> dict[str, dict[str, Any]]:
    """Per network, what GET /v1/networks shows as ``catch_up`` (the console shows the same)."""
    return {
        r["network"]: {
            "catching_up": r["catching_up"],
            "blocks_done": r["blocks_done"],
            "blocks_to_go": max(0, r["head"] - r["cursor"]),
            "blocks_per_second": None
            if r["blocks_per_second"] is None
            else round(r["blocks_per_second"], 1),
            "eta_seconds": None if r["eta_seconds"] is None else round(r["eta_seconds"]),
            "updated_at": r["updated_at"],
        }
        for r in await all_networks(conn)
    }
