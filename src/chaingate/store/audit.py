"""The append-only audit log: who did what, when (the table refuses UPDATE and DELETE)."""

from __future__ import annotations

import json
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
