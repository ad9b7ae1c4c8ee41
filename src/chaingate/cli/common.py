"""What the command modules share: settings from the environment, a database connection for
ops commands, and the stop event wired to SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from chaingate.logs import configure_logging
from chaingate.settings import Settings

if TYPE_CHECKING:
    import asyncpg


def log_level() -> str:
    return os.environ.get("CHAINGATE_LOG_LEVEL", "info")


def send_logs_to(path: Path, *, fresh: bool = False) -> None:
    """From now on every log line goes to ``path`` (JSON), so the terminal keeps the story.

    Call before the command logs anything: structlog caches a logger on first use. The file stays
    open until the process ends, so a late line (shutdown) never meets a closed file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if fresh:
        path.write_text("")
    # Append mode (O_APPEND): a child process (the demo's signer) appends to the same file.
    out = path.open("a", encoding="utf-8", buffering=1)
    configure_logging("json", log_level(), stream=out)


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
