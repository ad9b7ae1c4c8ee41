"""Writing to the ledger outbox. Always inside the caller's transaction (that is the point)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

# NOTIFY channel of new rows (delivered at commit): the dispatcher wakes on it instead of
# waiting out its poll interval (ledger/dispatcher.py, delivery.wake_on_notify).
CHANNEL = "ledger_outbox"


async def enqueue(
    conn: asyncpg.Connection, kind: str, idempotency_key: str, payload: dict[str, Any]
) -> None:
    """Queue one ledger request; queuing the same key twice keeps the first (repeat-safe)."""
    await enqueue_many(conn, kind, [(idempotency_key, payload)])


async def enqueue_many(
    conn: asyncpg.Connection, kind: str, messages: Sequence[tuple[str, dict[str, Any]]]
) -> None:
    """Queue ledger requests (idempotency key, body) in one set-based insert, and notify
    ``CHANNEL`` when a row was new (PostgreSQL sends it when the caller's transaction commits,
    and not at all when it rolls back)."""
    if not messages:
        return
    await conn.execute(
        """WITH queued AS (
               INSERT INTO ledger_outbox (idempotency_key, kind, payload)
               SELECT k, $1, p FROM unnest($2::text[], $3::jsonb[]) AS m(k, p)
               ON CONFLICT (idempotency_key) DO NOTHING RETURNING 1)
           SELECT pg_notify($4, '') WHERE EXISTS (SELECT 1 FROM queued)""",
        kind,
        [key for key, _ in messages],
        [{"idempotency_key": key, **payload} for key, payload in messages],
        CHANNEL,
    )


# --- operations: inspect the backlog and un-park what the ledger refused ---------------------
# A parked row has parked_at set (and next_attempt_at = 'infinity'): kept, never retried, never
# dropped (see the dispatcher). Un-parking sends the SAME payload under the SAME idempotency key
# again.


async def backlog(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Undelivered rows by kind: pending (due or backing off), parked, and the oldest."""
    rows = await conn.fetch(
        """SELECT kind,
                  count(*) FILTER (WHERE parked_at IS NULL) AS pending,
                  count(*) FILTER (WHERE parked_at IS NOT NULL) AS parked,
                  min(created_at) AS oldest
             FROM ledger_outbox WHERE delivered_at IS NULL GROUP BY kind ORDER BY kind"""
    )
    return [dict(r) for r in rows]


async def list_parked(conn: asyncpg.Connection, limit: int = 100) -> list[dict[str, Any]]:
    """Parked rows oldest first, with what the ledger answered (``last_error``, ``response``)."""
    rows = await conn.fetch(
        """SELECT id, kind, idempotency_key, attempts, last_error, created_at,
                  payload::text AS payload, response::text AS response
             FROM ledger_outbox
            WHERE delivered_at IS NULL AND parked_at IS NOT NULL
            ORDER BY id LIMIT $1""",
        limit,
    )
    return [
        {
            **dict(r),
            "payload": json.loads(r["payload"]),
            "response": None if r["response"] is None else json.loads(r["response"]),
        }
        for r in rows
    ]


async def idempotency_key(conn: asyncpg.Connection, outbox_id: int) -> str | None:
    key: str | None = await conn.fetchval(
        "SELECT idempotency_key FROM ledger_outbox WHERE id = $1", outbox_id
    )
    return key
