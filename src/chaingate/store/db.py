"""asyncpg pool with the codecs the repositories rely on (jsonb <-> Python objects)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from chaingate.errors import DatabaseUnavailableError


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def connect_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, **options: Any
) -> asyncpg.Pool:
    """Open a pool; a refused connection is a DatabaseUnavailableError naming host, port and
    database but never the whole DSN (it may hold a password)."""
    try:
        pool: Any = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            command_timeout=60,
            **options,
        )
    except OSError as exc:  # refused, unreachable, timed out (TimeoutError is an OSError)
        reason = exc.strerror or str(exc) or "timed out"
        raise DatabaseUnavailableError(
            f"the database at {where(dsn)} does not answer ({type(exc).__name__}: {reason})"
        ) from exc
    except asyncpg.PostgresError as exc:
        raise DatabaseUnavailableError(
            f"the database at {where(dsn)} refused the connection ({type(exc).__name__}: {exc})",
            hint="check the user, password and database name in CHAINGATE_DATABASE_URL "
            "(`chaingate devnet up` creates a local database)",
        ) from exc
    return pool  # type: ignore[no-any-return]


def where(dsn: str) -> str:
    """``host:port/database`` of a DSN: enough to find the server, never its password."""
    try:
        parts = urlsplit(dsn)
        port = parts.port or 5432
    except ValueError:
        return "(unparseable CHAINGATE_DATABASE_URL)"
    return f"{parts.hostname or 'localhost'}:{port}{parts.path or ''}"
