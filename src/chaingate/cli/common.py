"""What the command modules share: settings from the environment, a database connection for
ops commands, and the stop event wired to SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from chaingate.settings import Settings

if TYPE_CHECKING:
    import asyncpg


def settings(require_database: bool = True) -> Settings:
    return Settings.from_env(os.environ, require_database=require_database)


@asynccontextmanager
async def ops_connection() -> AsyncIterator[asyncpg.Connection]:
    """One connection to the gateway's database for an ops command."""
    from chaingate.store import connect_pool

    pool = await connect_pool(settings().database_url, max_size=1)
    try:
        async with pool.acquire() as conn:
            yield conn
    finally:
        await pool.close()


def stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
