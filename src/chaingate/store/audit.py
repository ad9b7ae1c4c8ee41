"""The append-only audit log: who did what, when (the table refuses UPDATE and DELETE)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg


async def record(
    conn: asyncpg.Connection, actor: str, action: str, subject: str | None, details: dict[str, Any]
) -> None:
    """Append one audit row; call it inside the transaction of the action it records."""
    await conn.execute(
        "INSERT INTO audit_log (actor, action, subject, details) VALUES ($1, $2, $3, $4::text::jsonb)",
        actor,
        action,
        subject,
        json.dumps(details),
    )


async def entries(
    conn: asyncpg.Connection,
    *,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Audit rows newest first; ``before_id`` is the cursor of the next page."""
    rows = await conn.fetch(
        """SELECT id, at, actor, action, subject, details::text AS details FROM audit_log
           WHERE ($1::text IS NULL OR actor = $1) AND ($2::text IS NULL OR action = $2)
             AND ($3::timestamptz IS NULL OR at >= $3) AND ($4::timestamptz IS NULL OR at < $4)
             AND ($5::bigint IS NULL OR id < $5)
           ORDER BY id DESC LIMIT $6""",
        actor,
        action,
        since,
        until,
        before_id,
        limit,
    )
    return [{**dict(r), "details": json.loads(r["details"])} for r in rows]
