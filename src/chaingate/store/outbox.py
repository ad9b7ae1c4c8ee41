"""Writing to the ledger outbox. Always inside the caller's transaction (that is the point)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg


async def enqueue(
    conn: asyncpg.Connection, kind: str, idempotency_key: str, payload: dict[str, Any]
) -> None:
    """Queue one ledger request; queuing the same key twice keeps the first (repeat-safe)."""
    await enqueue_many(conn, kind, [(idempotency_key, payload)])


async def enqueue_many(
    conn: asyncpg.Connection, kind: str, messages: Sequence[tuple[str, dict[str, Any]]]
) -> None:
    """Queue ledger requests (idempotency key, body) in one pipelined round of inserts."""
    await conn.executemany(
        """INSERT INTO ledger_outbox (idempotency_key, kind, payload) VALUES ($1, $2, $3)
           ON CONFLICT (idempotency_key) DO NOTHING""",
        [(key, kind, {"idempotency_key": key, **payload}) for key, payload in messages],
    )
