"""Alerts: stored once per event (dedup key), listed and acknowledged by ops."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from chaingate.domain import NewAlert


# jsonb goes in as text (``::text::jsonb``) so these work on any connection, with or without
# the service pool's jsonb codec (the dispatcher's tests and the bench use plain pools).
async def raise_alert(conn: asyncpg.Connection, alert: NewAlert) -> bool:
    """Store the alert unless the same event was already alerted; True when it is new."""
    new = await conn.fetchval(
        """INSERT INTO alerts (kind, severity, message, dedup_key, network, asset, amount, txid,
                               user_id, details)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::jsonb)
           ON CONFLICT (dedup_key) DO NOTHING RETURNING 1""",
        alert.kind,
        alert.severity,
        alert.message,
        alert.dedup_key,
        alert.network,
        alert.asset,
        alert.amount,
        alert.txid,
        alert.user_id,
        json.dumps(alert.details),
    )
    return new is not None


async def list_alerts(
    conn: asyncpg.Connection,
    *,
    open_only: bool = False,
    acknowledged: bool | None = None,
    severity: str | None = None,
    kind: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first; ``open_only`` (or ``acknowledged=False``) keeps the unacknowledged ones."""
    if open_only:
        acknowledged = False
    rows = await conn.fetch(
        """SELECT id, kind, severity, network, asset, amount, txid, user_id, message, details,
                  created_at, acknowledged_at, acknowledged_by, acknowledged_note, delivered_at
           FROM alerts
           WHERE ($1::boolean IS NULL OR (acknowledged_at IS NOT NULL) = $1)
             AND ($2::text IS NULL OR severity = $2) AND ($3::text IS NULL OR kind = $3)
           ORDER BY id DESC LIMIT $4""",
        acknowledged,
        severity,
        kind,
        limit,
    )
    return [dict(r) for r in rows]


async def acknowledge(
    conn: asyncpg.Connection, alert_id: int, actor: str, note: str | None = None
) -> bool:
    """Acknowledge an open alert; False when it is already acknowledged or does not exist."""
    done = await conn.fetchval(
        """UPDATE alerts SET acknowledged_at = now(), acknowledged_by = $2, acknowledged_note = $3
           WHERE id = $1 AND acknowledged_at IS NULL RETURNING 1""",
        alert_id,
        actor,
        note,
    )
    return done is not None


async def exists(conn: asyncpg.Connection, alert_id: int) -> bool:
    return await conn.fetchval("SELECT 1 FROM alerts WHERE id = $1", alert_id) is not None


async def undelivered_alerts(conn: asyncpg.Connection, *, limit: int = 100) -> list[dict[str, Any]]:
    """Alerts the webhook has not acknowledged yet, oldest first, with their delivery state."""
    rows = await conn.fetch(
        """SELECT id, kind, severity, created_at, attempts, next_attempt_at, last_error
           FROM alerts WHERE delivered_at IS NULL ORDER BY id LIMIT $1""",
        limit,
    )
    return [dict(r) for r in rows]


async def redeliver(conn: asyncpg.Connection, ids: list[int] | None) -> int:
    """Make undelivered alerts (``ids``, or all when None) due for pushing now, e.g. after the
    webhook refused them and its cause was fixed (a parked one is un-parked); the number made
    due."""
    result: str = await conn.execute(
        """UPDATE alerts SET next_attempt_at = now(), parked_at = NULL
           WHERE delivered_at IS NULL AND ($1::bigint[] IS NULL OR id = ANY($1::bigint[]))""",
        ids,
    )
    return int(result.split()[-1])
