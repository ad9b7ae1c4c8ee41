"""Catch-up progress of one watcher: blocks done, blocks to go, blocks/s, time left.

A watcher far behind its head (a fresh deployment with a start height in the past, a long
outage) works for minutes or hours; its operator wants to know how far it is and when it will be
done. After each step the watcher hands its cursor and head to ``CatchUp.after_step``, which at
most every ``every`` seconds logs ``watcher_catching_up`` (only while behind) and records the
same numbers in ``network_progress`` for ``GET /v1/networks`` and the ops console, and logs
``watcher_caught_up`` once when a catch-up ends. Recording is best effort: a failure to write
progress is logged and never fails the step that made it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import structlog

from chaingate.store import progress as store

log = structlog.get_logger(__name__)
EVERY_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Progress:
    network: str
    head: int
    cursor: int
    catching_up: bool
    done: int  # blocks scanned since this catch-up began
    blocks_per_second: float | None
    eta_seconds: float | None

    @property
    def to_go(self) -> int:
        return max(0, self.head - self.cursor)


class CatchUp:
    """Measures one network's catch-up; ``behind`` blocks or more count as catching up."""

    def __init__(
        self,
        network: str,
        behind: int,
        every: float = EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.network, self.behind, self.every, self.clock = network, max(1, behind), every, clock
        self._began: tuple[float, int] | None = None  # (time, cursor) when catching up began
        self._last_report = float("-inf")

    def observe(self, cursor: int, head: int) -> Progress | None:
        """The progress to report now, or None when the last report is too recent."""
        now = self.clock()
        catching_up = head - cursor >= self.behind
        ended = self._began is not None and not catching_up
        if catching_up and self._began is None:
            self._began = (now, cursor)
        if not ended and now - self._last_report < self.every:
            return None
        self._last_report = now
        done, rate, eta = 0, None, None
        if self._began is not None:
            began_at, began_cursor = self._began
            done, elapsed = cursor - began_cursor, now - began_at
            rate = done / elapsed if elapsed > 0 and done > 0 else None
            eta = (head - cursor) / rate if rate and catching_up else None
        progress = Progress(self.network, head, cursor, catching_up, done, rate, eta)
        if ended:
            log.info("watcher_caught_up", network=self.network, blocks=done,
                     seconds=round(now - began_at, 1), head=head)  # fmt: skip
            self._began = None
        elif catching_up:
            log.info("watcher_catching_up", network=self.network, done=done,
                     to_go=progress.to_go, blocks_per_s=None if rate is None else round(rate, 1),
                     eta_s=None if eta is None else round(eta), cursor=cursor, head=head)  # fmt: skip
        return progress

    async def after_step(self, db: asyncpg.Pool, cursor: int, head: int) -> None:
        p = self.observe(cursor, head)
        if p is None:
            return
        try:
            async with db.acquire() as conn:
                await store.record(
                    conn, p.network, p.head, p.cursor, p.catching_up, p.done,
                    p.blocks_per_second, p.eta_seconds,
                )  # fmt: skip
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            log.warning("watcher_progress_not_recorded", network=self.network,
                        error=type(exc).__name__)  # fmt: skip
