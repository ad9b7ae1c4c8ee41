"""Ops console sessions on the server: the cookie names one, this table says if it still stands.

Only the SHA-256 of a session id is stored, so reading the table logs nobody in.
"""

from __future__ import annotations

import hashlib

import asyncpg


def _digest(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


async def begin(
    conn: asyncpg.Connection, session_id: str, principal: str, token_sha256: bytes, seconds: int
) -> None:
    """Record a session made at login; expired sessions are swept on the way."""
    await conn.execute("DELETE FROM console_sessions WHERE expires_at < now() - interval '1 day'")
    await conn.execute(
        """INSERT INTO console_sessions (id_sha256, principal, token_sha256, expires_at)
           VALUES ($1, $2, $3, now() + make_interval(secs => $4))""",
        _digest(session_id),
        principal,
        token_sha256,
        seconds,
    )


async def token_of(conn: asyncpg.Connection, session_id: str) -> bytes | None:
    """The token digest of a live session (not ended, not expired), else None."""
    value = await conn.fetchval(
        """SELECT token_sha256 FROM console_sessions
           WHERE id_sha256 = $1 AND ended_at IS NULL AND expires_at > now()""",
        _digest(session_id),
    )
    return bytes(value) if value is not None else None


async def end(conn: asyncpg.Connection, session_id: str) -> None:
    await conn.execute(
        "UPDATE console_sessions SET ended_at = now() WHERE id_sha256 = $1 AND ended_at IS NULL",
        _digest(session_id),
    )
