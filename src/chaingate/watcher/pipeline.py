"""Catch-up pipelining: several scan ranges in flight ahead of the cursor, sized to the endpoint.

A scan is only a read, so the watcher keeps up to ``depth`` consecutive ranges being fetched
(and decoded) while it stores and credits the one at the cursor: the node always has work, and
the store write of range k overlaps the reads of k+1..k+depth. Nothing here writes. A range is
handed out only when it starts exactly at the cursor (and the watcher still checks it links to
the stored tip); a failed range drops every range after it, so the cursor never moves past the
last range that was scanned and stored whole.

The range size adapts to the endpoint (``RangeSizer``): from a quarter of the ceiling, it
doubles while ranges come back well within the endpoint's timeout, halves when one is refused,
times out or comes close to it, always within the network's ``scan_batch`` and the endpoints'
``max_log_range``. Chain-agnostic: all it asks
of the adapter is ``scan(start, end, watched)``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import structlog

from chaingate.domain import Network, ScanResult
from chaingate.errors import ProviderError

log = structlog.get_logger(__name__)

DEPTH = 4  # ranges in flight: as the SPEC section 13 baseline keeps batches in flight
MIN_START = 10  # blocks: the first range is never smaller unless the ceiling is

Scan = Callable[[int, int], Coroutine[Any, Any, ScanResult]]


class RangeSizer:
    """Blocks per scan range: grow while the endpoint answers fast, shrink when it does not.

    "Fast" is judged against the endpoint's own request timeout: a range answered within a
    quarter of it may double; one that came close to it (over three quarters), was refused, or
    timed out halves. Only near the timeout: on a busy machine every range waits behind the
    others in flight, and halving on mere slowness only multiplies the per-range work.
    """

    def __init__(self, ceiling: int, timeout: float, *, start: int | None = None) -> None:
        self.ceiling = max(1, ceiling)
        self.timeout = timeout
        # A quarter of the ceiling first (but not under MIN_START blocks), then doubling: a
        # first guess too big for the endpoint shows only as timeouts, and each one throws
        # away every range in flight (on a busy 2-core machine the first four ranges of 100
        # dense blocks timed out and were read again, doubling the node's work); one too small
        # costs two or three fast ranges before the size is right.
        first = start if start is not None else max(self.ceiling // 4, MIN_START)
        self.size = max(1, min(self.ceiling, first))

    @classmethod
    def for_network(cls, network: Network) -> RangeSizer:
        caps = [network.scan_batch, *(e.max_log_range for e in network.endpoints)]
        timeout = min((e.timeout for e in network.endpoints), default=10.0)
        return cls(min(caps), timeout)

    def answered(self, blocks: int, seconds: float) -> None:
        if seconds > self.timeout * 3 / 4:
            self._set(max(1, min(self.size, blocks) // 2), "slow")
        elif seconds < self.timeout / 4 and blocks >= self.size:
            self._set(min(self.ceiling, self.size * 2), "fast")

    def refused(self) -> None:
        self._set(max(1, self.size // 2), "refused")

    def _set(self, size: int, why: str) -> None:
        if size != self.size:
            log.debug("scan_range_resized", size=size, was=self.size, why=why)
            self.size = size


@dataclass(slots=True)
class _Flight:
    start: int
    end: int
    task: asyncio.Task[ScanResult]
    began: float
    took: float | None = field(default=None)


class ScanPipeline:
    """The ranges being read ahead of the cursor, oldest first.

    ``depth`` ranges are being read at any time: when one lands, the next is started at once
    (from its done callback), not when the watcher comes back for it, so the node keeps
    working while the watcher stores and credits. Landed ranges wait for the watcher, at most
    ``buffered`` of them (their transfers are held in memory).
    """

    def __init__(
        self, scan: Scan, sizer: RangeSizer, depth: int = DEPTH, buffered: int | None = None
    ) -> None:
        self._scan = scan
        self.sizer = sizer
        self.depth = max(1, depth)
        self.buffered = max(self.depth, buffered if buffered is not None else 2 * self.depth)
        self._ahead: deque[_Flight] = deque()
        self._reading = 0  # flights whose task has not finished
        self._head: int | None = None

    @property
    def in_flight(self) -> int:
        return len(self._ahead)

    async def next(self, cursor: int, head: int) -> tuple[int, ScanResult]:
        """The scan of the range after ``cursor`` (ending at or below ``head``), with the
        ranges after it set going. A failure drops everything read ahead and is raised."""
        ahead = self._ahead
        if ahead and (ahead[0].start != cursor + 1 or ahead[-1].end > head):
            self.drop()  # the cursor moved elsewhere (reorg, another writer) or the head fell
        self._head = head
        self._fill(cursor)
        flight = ahead.popleft()
        try:
            result = await flight.task
        except ProviderError:
            self.sizer.refused()
            self.drop()
            raise
        except BaseException:
            self.drop()
            raise
        self._answered(flight)
        self._fill(flight.end)
        return flight.end, result

    def _answered(self, flight: _Flight) -> None:
        took = flight.took
        if took is None:  # its done callback has not run yet
            took = asyncio.get_running_loop().time() - flight.began
        self.sizer.answered(flight.end - flight.start + 1, took)

    def drop(self) -> None:
        """Cancel every range in flight (nothing was written from them)."""
        self._head = None  # no refill from a landing range until next() says where to read
        while self._ahead:
            self._ahead.popleft().task.cancel()

    def _fill(self, cursor: int) -> None:
        head = self._head
        if head is None:
            return
        loop = asyncio.get_running_loop()
        last = self._ahead[-1].end if self._ahead else cursor
        while self._reading < self.depth and len(self._ahead) < self.buffered and last < head:
            start, end = last + 1, min(last + self.sizer.size, head)
            flight = _Flight(start, end, asyncio.create_task(self._scan(start, end)), loop.time())
            self._reading += 1
            flight.task.add_done_callback(partial(self._landed, flight))
            self._ahead.append(flight)
            last = end

    def _landed(self, flight: _Flight, task: asyncio.Task[ScanResult]) -> None:
        self._reading -= 1
        flight.took = asyncio.get_running_loop().time() - flight.began
        if task.cancelled():
            return
        if task.exception() is not None:
            return  # a dropped range's error is not news; a used one's is raised by next()
        if self._ahead:
            self._fill(self._ahead[-1].end)  # keep the node busy while the watcher stores
