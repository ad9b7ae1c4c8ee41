"""asyncpg pool with the codecs the repositories rely on (jsonb <-> Python objects)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from chaingate.errors import StoreError


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def connect_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, **options: Any
) -> asyncpg.Pool:
    """Open a pool; a refused connection is a StoreError without the DSN (it may hold a password)."""
    try:
        pool: Any = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            command_timeout=60,
            **options,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise StoreError(f"cannot connect to the database: {type(exc).__name__}: {exc}") from exc
    return pool  # type: ignore[no-any-return]
