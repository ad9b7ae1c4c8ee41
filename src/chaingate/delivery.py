"""What the at-least-once senders share: the ledger outbox dispatcher (``ledger/dispatcher.py``)
and the alert webhook pusher (``alerting/pusher.py``).

Both claim due rows of a PostgreSQL table with ``FOR UPDATE SKIP LOCKED`` and a lease, send
them, and record the outcome; this module holds the loop that drives such a pass until stopped,
the quick retries of one send, the retry backoff, and the bookkeeping of a failed or deferred
row, so the two behave the same under a lost database or a failing receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

import asyncpg
import structlog
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

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


# The tables whose rows are delivered this way (each has attempts, next_attempt_at, last_error
# and delivered_at). A closed set: the name goes into SQL text.
Table = Literal["ledger_outbox", "alerts"]


def quick_retries(attempts: int, wait: float, retry_on: type[Exception]) -> AsyncRetrying:
    """Up to ``attempts`` tries of one send, retried only on ``retry_on`` (the receiver is
    unavailable), with full jitter so senders that failed together do not retry in step."""
    return AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=wait, max=wait * 8),
        retry=retry_if_exception_type(retry_on),
        reraise=True,
    )


async def record_failure(
    db: asyncpg.Pool, table: Table, row_id: int, error: str, retry_in: float
) -> None:
    """Count a failed attempt of an undelivered row, keep its error, retry it in ``retry_in``."""
    async with db.acquire() as conn:
        await conn.execute(
            f"""UPDATE {table}
                SET attempts = attempts + 1, last_error = $2,
                    next_attempt_at = now() + make_interval(secs => $3)
                WHERE id = $1 AND delivered_at IS NULL""",
            row_id,
            error[:1000],
            retry_in,
        )


async def defer(db: asyncpg.Pool, table: Table, ids: Sequence[int], retry_in: float) -> None:
    """Make claimed rows that were not sent due again in ``retry_in`` (no attempt counted)."""
    if not ids:
        return
    async with db.acquire() as conn:
        await conn.execute(
            f"UPDATE {table} SET next_attempt_at = now() + make_interval(secs => $2)"
            " WHERE id = ANY($1::bigint[]) AND delivered_at IS NULL",
            list(ids),
            retry_in,
        )


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
