"""What the at-least-once senders share: the ledger outbox dispatcher (``ledger/dispatcher.py``)
and the alert webhook pusher (``alerting/pusher.py``).

Both claim due rows of a PostgreSQL table with ``FOR UPDATE SKIP LOCKED`` and a lease, send
them, and record the outcome; this module holds the loop that drives such a pass until stopped
and the retry backoff, so the two behave the same under a lost database or a failing receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable

import asyncpg
import structlog

log = structlog.get_logger(__name__)

# What a lost or restarting database looks like through asyncpg (InternalClientError: a pool
# connection killed while the pool was resetting it).
DB_DOWN = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)
_MAX_EXPONENT = 30


def backoff(attempts: int, base: float, maximum: float) -> float:
    """Seconds before the next attempt of a row that failed ``attempts`` times before:
    ``base * 2**attempts`` capped at ``maximum``, with jitter so senders do not retry in step."""
    delay = min(maximum, base * 2.0 ** min(attempts, _MAX_EXPONENT))
    return delay * random.uniform(0.5, 1.0)


async def run_passes(
    once: Callable[[], Awaitable[int]],
    stop: asyncio.Event,
    *,
    interval: float,
    batch_size: int,
    event: str,
) -> None:
    """Call ``once`` (one claim-send-record pass; returns how many rows it claimed) until
    ``stop`` is set. A full batch is followed at once by the next pass, anything less by a wait
    of ``interval``. A database error ends the pass, not the loop: nothing is lost (rows stay in
    their table and leases expire), so the next pass tries again. ``event`` prefixes the logs."""
    log.info(f"{event}_started", batch_size=batch_size)
    while not stop.is_set():
        try:
            claimed = await once()
        except DB_DOWN as exc:
            log.warning(f"{event}_db_error", error=type(exc).__name__)
            claimed = 0
        if claimed >= batch_size:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
    log.info(f"{event}_stopped")
