"""SQL migrations: files ``migrations/NNN_name.sql`` applied in order, each once.

Safe from several processes at once: a session advisory lock serialises runners, and each file is
applied in its own transaction together with its row in ``schema_migrations``. A file that changed
after it was applied is refused (its checksum is recorded): migrations are append-only.
"""

from __future__ import annotations

import hashlib
from importlib import resources

import asyncpg
import structlog

from chaingate.errors import MigrationError

log = structlog.get_logger(__name__)
_LOCK_ID = 0x63_67_6D_69_67  # "cgmig": one advisory lock id for every chaingate runner


def _migration_files() -> list[tuple[str, str]]:
    folder = resources.files("chaingate.store") / "migrations"
    files = sorted(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )
    return files


async def pending_migrations(conn: asyncpg.Connection) -> list[str]:
    """Names of migration files not yet applied (all of them on an empty database)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    done = (
        {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        if exists
        else set()
    )
    return [name for name, _ in _migration_files() if name not in done]


async def apply_migrations(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations; return the names applied now (empty when up to date)."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    text PRIMARY KEY,
                   checksum   text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        recorded = {
            row["version"]: row["checksum"]
            for row in await conn.fetch("SELECT version, checksum FROM schema_migrations")
        }
        for name, sql in _migration_files():
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if name in recorded:
                if recorded[name] != checksum:
                    raise MigrationError(
                        f"migration {name} changed after it was applied; add a new file instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                    name,
                    checksum,
                )
            log.info("migration_applied", version=name)
            applied_now.append(name)
    except asyncpg.PostgresError as exc:
        raise MigrationError(f"migration failed: {type(exc).__name__}: {exc}") from exc
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    return applied_now
