"""What the at-least-once senders share: the ledger outbox dispatcher (``ledger/dispatcher.py``)
and the alert webhook pusher (``alerting/pusher.py``).

Both work a table through the one leased queue (``store/queue.py``: claim, renew, complete,
fail with backoff, defer, park); this module holds the sender side: the loop that drives such a
pass until stopped and the quick retries of one send, so every sender behaves the same under a
lost database or a failing receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

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


def quick_retries(attempts: int, wait: float, retry_on: type[Exception]) -> AsyncRetrying:
    """Up to ``attempts`` tries of one send, retried only on ``retry_on`` (the receiver is
    unavailable), with full jitter so senders that failed together do not retry in step."""
    return AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=wait, max=wait * 8),
        retry=retry_if_exception_type(retry_on),
        reraise=True,
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
