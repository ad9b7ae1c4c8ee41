"""Per-network status as the watchers' processes see it (head, endpoint health), for
GET /v1/networks, beside the cursor and the leader lease."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg


async def publish(
    conn: asyncpg.Pool | asyncpg.Connection,
    network: str,
    instance: str,
    head: int | None,
    endpoints: Sequence[dict[str, Any]],
) -> None:
    # jsonb goes in as text so this works with or without the pool's jsonb codec.
    await conn.execute(
        """INSERT INTO network_status (network, instance, head, endpoints, updated_at)
           VALUES ($1, $2, $3, $4::text::jsonb, now())
           ON CONFLICT (network) DO UPDATE SET
               instance = excluded.instance, head = excluded.head,
               endpoints = excluded.endpoints, updated_at = excluded.updated_at""",
        network,
        instance,
        head,
        json.dumps(list(endpoints)),
    )


async def overview(conn: asyncpg.Connection, networks: Sequence[str]) -> list[dict[str, Any]]:
    """One row per network: published status, cursor, and ages on the database clock."""
    rows = await conn.fetch(
        """SELECT n.network, s.instance, s.head, s.endpoints::text AS endpoints,
                  s.updated_at AS status_at,
                  extract(epoch FROM clock_timestamp() - s.updated_at) AS status_age,
                  c.height AS cursor, c.updated_at AS cursor_at
           FROM unnest($1::text[]) AS n(network)
           LEFT JOIN network_status s ON s.network = n.network
           LEFT JOIN chain_cursor c ON c.network = n.network
           ORDER BY n.network""",
        list(networks),
    )
    out = []
    for r in rows:
        row = dict(r)
        row["endpoints"] = json.loads(row["endpoints"]) if row["endpoints"] else []
        row["status_age"] = None if row["status_age"] is None else float(row["status_age"])
        out.append(row)
    return out
