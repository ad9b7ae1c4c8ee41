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
from typing import Any

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
    wake: asyncio.Event | None = None,
) -> None:
    """Call ``once`` (one claim-send-record pass; returns how many rows it claimed) until
    ``stop`` is set. A full batch is followed at once by the next pass, anything less by a wait
    of ``interval``, cut short when ``wake`` is set (new rows were queued: ``wake_on_notify``).
    A database error ends the pass, not the loop: nothing is lost (rows stay in their table and
    leases expire), so the next pass tries again. ``event`` prefixes the logs."""
    log.info(f"{event}_started", batch_size=batch_size)
    while not stop.is_set():
        if wake is not None:
            wake.clear()  # before the pass: a row queued during it wakes the next one at once
        try:
            claimed = await once()
        except DB_DOWN as exc:
            log.warning(f"{event}_db_error", error=type(exc).__name__)
            claimed = 0
        if claimed >= batch_size:
            continue
        await _first_of(stop, wake, timeout=interval)
    log.info(f"{event}_stopped")


Connect = Callable[[], Awaitable[asyncpg.Connection]]


async def wake_on_notify(
    connect: Connect,
    channel: str,
    wake: asyncio.Event,
    stop: asyncio.Event,
    *,
    event: str,
    retry: float = 1.0,
) -> None:
    """Set ``wake`` at every NOTIFY on ``channel`` until ``stop``, on a connection of its own
    (``connect``), reconnecting after ``retry`` s when it is lost. Only a hint: whoever waits on
    ``wake`` still polls, so a lost notification or a lost connection delays work, never
    loses it. ``wake`` is also set once listening starts, for what was queued meanwhile."""

    def notified(*_: Any) -> None:
        wake.set()

    while not stop.is_set():
        conn: asyncpg.Connection | None = None
        try:
            conn = await connect()
            closed = _closed(conn)
            await conn.add_listener(channel, notified)
            log.info(f"{event}_listening", channel=channel)
            wake.set()
            await _first_of(stop, closed)
            if not stop.is_set():
                log.warning(f"{event}_listener_lost", channel=channel)
        except DB_DOWN as exc:
            log.warning(f"{event}_listen_failed", channel=channel, error=type(exc).__name__)
        finally:
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(*DB_DOWN):
                    await conn.close(timeout=5)
        await _first_of(stop, None, timeout=retry)


def _closed(conn: asyncpg.Connection) -> asyncio.Event:
    """Set when ``conn`` is closed or lost (the server went away, the backend was killed)."""
    closed = asyncio.Event()
    conn.add_termination_listener(lambda _conn: closed.set())
    return closed


async def _first_of(
    stop: asyncio.Event, other: asyncio.Event | None, *, timeout: float | None = None
) -> None:
    """Wait until ``stop`` or ``other`` is set, or ``timeout`` s have passed."""
    waiters = [asyncio.create_task(e.wait()) for e in (stop, other) if e is not None]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
