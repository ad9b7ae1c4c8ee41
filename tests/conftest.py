"""Shared fixtures: real PostgreSQL databases (created per test, dropped after)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from chaingate.devnet import postgres
from chaingate.devnet.manager import DevnetState
from chaingate.devnet.testing import running_devnet
from chaingate.store import connect_pool

DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


async def _reachable(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@pytest.fixture(scope="session")
async def pg_admin_dsn(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A server we may create databases on: the configured one, the local one, or a throwaway."""
    dsn = os.environ.get("CHAINGATE_TEST_ADMIN_DSN", DEFAULT_ADMIN_DSN)
    if await _reachable(dsn):
        yield dsn
        return
    # No server: a throwaway cluster from the machine's PostgreSQL binaries (SPEC section 11).
    async with running_devnet(tmp_path_factory.mktemp("pg"), components=["postgres"]) as state:
        assert state.database_url is not None
        yield state.database_url.rsplit("/", 1)[0] + "/postgres"


@pytest.fixture(scope="session")
async def devnet(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevnetState]:
    """The chain nodes (anvil x2, litecoind regtest, TRON devnet) for the whole session."""
    async with running_devnet(
        tmp_path_factory.mktemp("devnet"), components=["eth", "bsc", "litecoind", "tron"]
    ) as state:
        yield state


@asynccontextmanager
async def scratch_database(admin_dsn: str, prefix: str = "cg_test") -> AsyncIterator[str]:
    """An empty database of our own on the test server, dropped afterwards."""
    async with postgres.scratch_database(postgres.server_of(admin_dsn), prefix) as dsn:
        yield dsn


@pytest.fixture
async def database(pg_admin_dsn: str) -> AsyncIterator[str]:
    """DSN of a fresh, migrated database of our own."""
    server = postgres.server_of(pg_admin_dsn)
    async with postgres.scratch_database(server, "cg_test", migrate=True) as dsn:
        yield dsn


@pytest.fixture(scope="module")
async def module_database(pg_admin_dsn: str) -> AsyncIterator[str]:
    """A migrated database for a whole module; see ``emptied``."""
    server = postgres.server_of(pg_admin_dsn)
    async with postgres.scratch_database(server, "cg_test", migrate=True) as dsn:
        yield dsn


async def emptied(dsn: str, schema: str = "public") -> str:
    """``dsn`` with every table emptied (the schema stays): as good as a fresh database for a
    test, at a fraction of the cost of creating and dropping one (most of a short test's time
    on a busy server). The audit log is append-only (a trigger refuses even TRUNCATE) and stays.
    A module opts in by defining ``database`` as ``emptied(module_database)``."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = [
            r["tablename"]
            for r in await conn.fetch(
                """SELECT tablename FROM pg_tables
                   WHERE schemaname = $1
                     AND tablename NOT IN ('schema_migrations', 'audit_log')""",
                schema,
            )
        ]
        quoted = ", ".join(f'"{schema}"."{t}"' for t in tables)
        await conn.execute(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()
    return dsn


@pytest.fixture
async def db(database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect_pool(database, max_size=10)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def ledger_url(pg_admin_dsn: str) -> AsyncIterator[str]:
    """The reference ledger over real HTTP on its own database."""
    from chaingate.ledger.reference.app import serve_reference_ledger
    from harness import LEDGER_SECRET

    async with (
        scratch_database(pg_admin_dsn, "cg_ledger") as dsn,
        serve_reference_ledger("127.0.0.1", 0, dsn, LEDGER_SECRET) as url,
    ):
        yield url


@pytest.fixture(scope="module")
async def module_ledger(pg_admin_dsn: str) -> AsyncIterator[tuple[str, str]]:
    """The reference ledger for a whole module: (its URL, its database)."""
    from chaingate.ledger.reference.app import serve_reference_ledger
    from harness import LEDGER_SECRET

    async with (
        scratch_database(pg_admin_dsn, "cg_ledger") as dsn,
        serve_reference_ledger("127.0.0.1", 0, dsn, LEDGER_SECRET) as url,
    ):
        yield url, dsn


async def emptied_ledger(ledger: tuple[str, str]) -> str:
    """The module's reference ledger with nothing recorded: as good as a fresh one."""
    url, dsn = ledger
    await emptied(dsn, schema="refledger")
    return url
