"""Finding the fork point (SPEC section 4, docs/architecture.md section 6): which evidence counts.

Evidence comes from one endpoint at a time (``ChainAdapter.pinned``), judged against the head
that same endpoint reports: a stored height above it says nothing, a height at or below it that
the endpoint does not serve is the endpoint's fault (EndpointInconsistentError, booked against
it), and only another hash at or below its head is a reorg. A fork that would reverse credits,
or halt the watcher, must be seen twice before anything is rolled back.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import structlog

from chaingate.chains.base import ChainAdapter
from chaingate.domain import AlertKind, AlertSeverity, NewAlert
from chaingate.errors import (
    BlockNotFoundError,
    ChainDataError,
    EndpointInconsistentError,
    ReorgTooDeepError,
)
from chaingate.store import chainstate, deposits
from chaingate.store.alerts import raise_alert
from chaingate.store.leases import Lease

log = structlog.get_logger(__name__)


class ForkFinder:
    def __init__(self, adapter: ChainAdapter, db: asyncpg.Pool) -> None:
        self.adapter = adapter
        self.network = adapter.network
        self.name = adapter.network.name
        self.db = db

    async def find(
        self, lease: Lease, cursor: int, head: int
    ) -> tuple[list[tuple[int, str]], int | None]:
        """The stored hashes, and None while our tip is still canonical, else the highest
        height whose hash still is; read on the pinned endpoint whose head is ``head``.

        A stored height above that head is no evidence either way (a lagging backend has not
        got there); a height at or below it that the endpoint does not serve is its fault
        (EndpointInconsistentError: booked against it, benched, the step fails over); only a
        hash that differs from ours at or below its head is a reorg.
        """
        async with self.db.acquire() as conn:
            history = await chainstate.stored_hashes_desc(conn, self.name, cursor)
        if not history:
            await self._anchor(lease, cursor)  # fresh start
            return history, None
        if history[0][0] != cursor:
            return history, None
        return history, await self._fork_on_pinned(history, head)

    async def confirm(self, history: list[tuple[int, str]], fork: int, seen_on: str) -> None:
        """A fork that would reverse credits, or halt the watcher, is read a second time
        (another endpoint where there is one, its fresh head in any case) and acted on only
        when both reads agree; a fork below the stored window then halts the watcher."""
        oldest = history[-1][0]
        async with self.db.acquire() as conn:
            reverses = await deposits.credited_above(conn, self.name, fork)
        if reverses or fork < oldest:
            async with self.adapter.pinned(avoid=seen_on) as other:
                again = await self._fork_on_pinned(history, (await self.adapter.head()).number)
            if again != fork:
                log.warning(
                    "reorg_unconfirmed",
                    network=self.name,
                    fork_height=fork,
                    endpoint=seen_on,
                    second_read=again,
                    second_endpoint=other,
                )
                raise ChainDataError(
                    f"{self.name}: fork at {fork} seen on {seen_on}, not on {other} ({again})"
                )
        if fork >= oldest:
            return
        async with self.db.acquire() as conn:
            await raise_alert(
                conn,
                NewAlert(
                    kind=AlertKind.REORG_TOO_DEEP,
                    severity=AlertSeverity.CRITICAL,
                    network=self.name,
                    dedup_key=f"reorg_too_deep:{self.name}:{history[0][0]}",
                    message=f"{self.name}: no stored block hash at or above {oldest} is canonical "
                    "any more; the watcher stopped and needs an operator",
                ),
            )
        raise ReorgTooDeepError(f"{self.name}: fork point below the stored window ({oldest})")

    async def _fork_on_pinned(self, history: Sequence[tuple[int, str]], head: int) -> int | None:
        """Walk the stored hashes down on the pinned endpoint; below the window: oldest - 1."""
        mismatched = False
        for number, stored in history:
            if number > head:
                continue  # no evidence either way: the endpoint has not got there (yet)
            try:
                current = await self.adapter.block_ref(number)
            except BlockNotFoundError as exc:
                raise EndpointInconsistentError(
                    f"{self.name}: block {number} not served at or below the endpoint's own "
                    f"head {head}"
                ) from exc
            if current.hash == stored:
                return number if mismatched else None
            mismatched = True
        return history[-1][0] - 1 if mismatched else None

    async def _anchor(self, lease: Lease, cursor: int) -> None:
        """Store the hash of the block below the first one we scan: without it, a reorg that
        replaces every block scanned so far finds no fork point and stops the watcher."""
        if cursor < 0:
            return
        try:
            ref = await self.adapter.block_ref(cursor)
        except BlockNotFoundError:
            return  # start_height is above the head: anchor once the chain gets there
        async with self.db.acquire() as conn, conn.transaction():
            await chainstate.move_cursor(conn, lease, self.name, cursor, cursor)
            await chainstate.record_blocks(conn, self.name, [ref], self.network.reorg_window)
