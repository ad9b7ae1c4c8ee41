"""One watcher per network, knowing nothing about any chain.

Each step: read the head, refresh the watched addresses (after the head, so every address paid in
a block up to that head was issued before we look), detect a reorg by block hash and roll back,
scan the next range, and store transfers + block hashes + cursor in ONE transaction; then count
confirmations and credit through the outbox in one transaction. A failed step moves nothing: the
next one starts from the same cursor, so no height is ever skipped and a repeat is harmless.

Only the holder of the network's lease (``watcher:<network>``, store/leases.py) writes: every
write transaction checks the lease epoch the step began under and compares and sets the cursor
(height and epoch), so a deposed leader's late writes are refused and it steps down.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import structlog

from chaingate.chains.base import ChainAdapter
from chaingate.domain import (
    ChainHead,
    DepositStatus,
    RejectReason,
    ScanResult,
    Transfer,
)
from chaingate.errors import (
    ChainDataError,
    ChaingateError,
    FencedOut,
    ProviderError,
    ReorgTooDeepError,
)
from chaingate.ledger.messages import Credit, credit_key
from chaingate.metrics import WatcherMetrics
from chaingate.store import addresses, chainstate, deposits, leases, outbox
from chaingate.store.alerts import raise_alert
from chaingate.store.leases import Lease
from chaingate.watcher.addressbook import AddressBook
from chaingate.watcher.forks import ForkFinder
from chaingate.watcher.leadership import LeaseKeeper
from chaingate.watcher.pipeline import RangeSizer, ScanPipeline
from chaingate.watcher.progress import CatchUp
from chaingate.watcher.reversals import reverse_credits
from chaingate.watcher.rules import decide

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class StepResult:
    head: int
    cursor: int
    scanned: int = 0
    transfers: int = 0
    credited: int = 0
    reorg_depth: int = 0

    @property
    def caught_up(self) -> bool:
        return self.cursor >= self.head


class Watcher:
    def __init__(
        self,
        adapter: ChainAdapter,
        db: asyncpg.Pool,
        *,
        metrics: WatcherMetrics | None = None,
        holder: str | None = None,
        lease_ttl: float = 30.0,
    ) -> None:
        self.adapter = adapter
        self.network = adapter.network
        self.name = adapter.network.name
        self.db = db
        self.book = AddressBook(adapter.network, adapter.addresses.raw_key)
        self.forks = ForkFinder(adapter, db)
        self.metrics = metrics or WatcherMetrics()
        # Only the holder of this lease writes for the network; every write transaction checks
        # the epoch it read the cursor under (store/leases.py, chainstate.move_cursor).
        self.leadership = LeaseKeeper(
            db, f"watcher:{self.name}", holder or leases.new_holder_id(), lease_ttl
        )
        self.catch_up = CatchUp(self.name, behind=2 * adapter.network.scan_batch)
        # While catching up, the scans of the next ranges run while this one is stored and
        # credited. They are only reads: one is used when it starts exactly at the cursor (and
        # _store_range still checks it links to the stored tip), and dropped otherwise.
        self.pipeline = ScanPipeline(
            lambda start, end: adapter.scan(start, end, self.book.keys),
            RangeSizer.for_network(adapter.network),
        )

    # --- the loop -----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Lead this network's watching until ``stop``; stand by while another instance leads,
        and step down (never crash) when a write finds the lease taken over."""
        try:
            await self._run(stop)
        finally:
            self.pipeline.drop()
            self.metrics.leader_epoch.labels(self.name).set(0)
            await self.leadership.release()

    async def _run(self, stop: asyncio.Event) -> None:
        standby = False
        while not stop.is_set():
            try:
                lease = await self.leadership.hold()
                if lease is None:
                    if not standby:
                        log.info("watcher_standby", network=self.name)
                    standby = True
                    await _sleep_or_stop(stop, self.leadership.retry_interval)
                    continue
                standby = False
                log.info("watcher_leading", network=self.name, epoch=lease.epoch)
                await self._lead(stop)
            except FencedOut as exc:
                self.leadership.forget()
                self.pipeline.drop()
                self.metrics.deposed.labels(self.name).inc()
                self.metrics.leader_epoch.labels(self.name).set(0)
                log.warning("watcher_deposed", network=self.name, error=str(exc))
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                log.warning("watcher_leadership_lost", network=self.name, error=type(exc).__name__)
                await _sleep_or_stop(stop, 1.0)

    async def _lead(self, stop: asyncio.Event) -> None:
        renewing = asyncio.create_task(self.leadership.keep(stop), name=f"lease:{self.name}")
        try:
            await self._steps(stop)
        finally:
            renewing.cancel()
            with suppress(asyncio.CancelledError):
                await renewing

    async def _steps(self, stop: asyncio.Event) -> None:
        failures = 0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            started = loop.time()
            try:
                result = await self.step()
                failures = 0
                await self.catch_up.after_step(self.db, result.cursor, result.head)
            except (ReorgTooDeepError, FencedOut):
                raise  # a human is needed (alerted in ForkFinder.confirm), or another instance leads
            except (ChaingateError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                failures += 1
                self.metrics.step_errors.labels(self.name, type(exc).__name__).inc()
                log.warning(
                    "watcher_step_failed",
                    network=self.name,
                    error=str(exc),
                    error_type=type(exc).__name__,
                    failures=failures,
                )
                await _sleep_or_stop(stop, min(30.0, self.network.poll_interval * 2**failures))
                continue
            if result.caught_up:
                await _sleep_or_stop(stop, poll_wait(self.network.poll_interval, started, loop))

    async def _hold(self) -> Lease:
        """The lease this step writes under (taken or renewed now), or FencedOut."""
        lease = await self.leadership.hold()
        if lease is None:
            raise FencedOut(f"{self.name}: another instance leads this network's watcher")
        self.metrics.leader_epoch.labels(self.name).set(lease.epoch)
        return lease

    async def step(self) -> StepResult:
        try:
            return await self._step()
        except BaseException:
            self.pipeline.drop()  # a failed or cancelled step leaves nothing running
            raise

    async def _step(self) -> StepResult:
        lease = await self._hold()
        head, cursor, history, fork, endpoint = await self._view(lease)
        if fork is not None:
            await self.forks.confirm(history, fork, endpoint)
        depth = 0
        if fork is not None:
            depth = cursor - fork
            await self._rollback(lease, cursor, fork)
            cursor = fork
        scanned, found, credited = 0, 0, 0
        if cursor < head.number:
            end, result = await self.pipeline.next(cursor, head.number)
            if await self._store_range(lease, cursor, end, result):
                scanned, found, cursor = end - cursor, len(result.transfers), end
        if not depth:  # a step that found a reorg credits nothing: the next one re-checks
            credited = await self._credit(lease, head, cursor)
        if cursor >= head.number:  # after crediting, and best effort: see _track_pending
            await self._track_pending(lease, cursor)
        self.metrics.cursor.labels(self.name).set(cursor)
        return StepResult(head.number, cursor, scanned, found, credited, depth)

    async def _view(
        self, lease: Lease
    ) -> tuple[ChainHead, int, list[tuple[int, str]], int | None, str]:
        """Head, cursor, stored hashes and fork point, with the head and the fork check from
        one endpoint (its blocks are judged against the head it reports itself, see
        watcher/forks.py). An endpoint whose answers fail there is booked (benched) by the
        pool, and the next one is asked, as the pool itself fails over an unpinned call."""
        attempts = max(1, len(self.network.endpoints))
        for attempt in range(1, attempts + 1):
            try:
                async with self.adapter.pinned() as endpoint:
                    head = await self.adapter.head()
                    self.metrics.head.labels(self.name).set(head.number)
                    async with self.db.acquire() as conn:
                        await self.book.refresh(conn)
                        cursor = await chainstate.get_cursor(conn, self.name)
                    if cursor is None:
                        cursor = await self._init_cursor(lease, head)
                    history, fork = await self.forks.find(lease, cursor, head.number)
                    return head, cursor, history, fork, endpoint
            except (ProviderError, ChainDataError) as exc:
                if attempt == attempts:
                    raise
                log.warning(
                    "endpoint_failed_over",
                    network=self.name,
                    error=str(exc),
                    error_type=type(exc).__name__,
                )
        raise AssertionError("unreachable")

    async def _init_cursor(self, lease: Lease, head: ChainHead) -> int:
        """First run on this database: start at ``start_height`` (default: the head)."""
        start = self.network.start_height
        async with self.db.acquire() as conn:
            return await chainstate.init_cursor(
                conn, lease, self.name, (head.number if start is None else start) - 1
            )

    # --- reorgs -------------------------------------------------------------------------------
    async def _rollback(self, lease: Lease, cursor: int, fork: int) -> None:
        """Undo what the blocks above ``fork`` did, in one transaction fenced by ``lease`` and
        compared-and-set on ``cursor``: a deposed leader's stale rollback is refused whole."""
        async with self.db.acquire() as conn, conn.transaction():
            await chainstate.rewind(conn, lease, self.name, cursor, fork)
            orphaned, reversed_rows = await deposits.rollback_above(conn, self.name, fork)
            for kind in await reverse_credits(conn, self.name, reversed_rows, reorg=True):
                self.metrics.alerts.labels(kind, self.name).inc()
        self.metrics.reorgs.labels(self.name).inc()
        self.metrics.reversals.labels(self.name).inc(len(reversed_rows))
        log.warning(
            "reorg",
            network=self.name,
            fork_height=fork,
            orphaned=orphaned,
            reversed=len(reversed_rows),
        )

    # --- scanning -----------------------------------------------------------------------------
    async def _store_range(self, lease: Lease, cursor: int, end: int, result: ScanResult) -> bool:
        blocks = result.blocks
        numbers = [b.number for b in blocks]
        if numbers != list(range(cursor + 1, end + 1)):
            raise ChainDataError(
                f"{self.name}: scan of {cursor + 1}..{end} returned {numbers[:3]}..."
            )
        async with self.db.acquire() as conn, conn.transaction():
            tip = await chainstate.stored_hash(conn, self.name, cursor)
            if tip is not None and blocks[0].parent_hash != tip:
                log.warning("reorg_during_scan", network=self.name, height=cursor)
                return False  # the next step's fork search handles it
            await chainstate.move_cursor(conn, lease, self.name, cursor, end)
            await self._record_transfers(conn, result.transfers, verified_tip=end)
            await chainstate.record_blocks(conn, self.name, blocks, self.network.reorg_window)
        self.metrics.blocks.labels(self.name).inc(len(blocks))
        if result.transfers:
            log.info(
                "transfers_found",
                network=self.name,
                blocks=f"{cursor + 1}..{end}",
                count=len(result.transfers),
            )
        return True

    async def _record_transfers(
        self,
        conn: asyncpg.Connection,
        transfers: Sequence[Transfer],
        *,
        verified_tip: int | None = None,
    ) -> None:
        if not transfers:
            return
        owners = await addresses.owners(conn, self.book.networks, [t.to for t in transfers])
        day = datetime.now(UTC).date()
        decisions = [decide(self.network, t, owners.get(t.to), day) for t in transfers]
        rows = [d.deposit for d in decisions]
        # A credited deposit that this block contradicts is reversed first; upsert then takes
        # the block's word for it (a new credit generation, so a new credit key).
        changed = await deposits.reverse_changed(conn, rows)
        for kind in await reverse_credits(conn, self.name, changed, reorg=False):
            self.metrics.alerts.labels(kind, self.name).inc()
        self.metrics.reversals.labels(self.name).inc(len(changed))
        for row in changed:
            log.error(
                "credited_deposit_changed",
                network=self.name,
                txid=row["txid"],
                position=row["position"],
                old_amount=str(int(row["amount"])),
                new_amount=str(int(row["new_amount"])),
            )
        await deposits.upsert(conn, rows, verified_tip=verified_tip)
        by_status = Counter(row.status.value for row in rows)
        for status, count in by_status.items():
            self.metrics.deposits.labels(self.name, status).inc(count)
        unlisted = sum(
            1
            for row in rows
            if row.block_number is not None and row.reason == RejectReason.UNLISTED_TOKEN
        )
        if unlisted:
            self.metrics.unlisted_tokens.labels(self.name).inc(unlisted)
        for d in decisions:
            if d.alert is not None and await raise_alert(conn, d.alert):
                self.metrics.alerts.labels(d.alert.kind, self.name).inc()
                log.warning(
                    "alert",
                    kind=d.alert.kind,
                    network=self.name,
                    txid=d.alert.txid,
                    reason=d.deposit.reason,
                )

    async def _track_pending(self, lease: Lease, cursor: int) -> None:
        """The mempool view: informational (nothing is credited from it), so it runs after
        crediting and its failure (getrawmempool refused, a huge first fetch timing out) is
        logged and counted, never the step's failure. Only a complete view orphans sightings
        that left it (an adapter that decodes a big mempool over several steps says so)."""
        try:
            pending = [
                t for t in await self.adapter.pending(self.book.keys) if t.block_number is None
            ]
            complete = self.adapter.mempool_complete
            async with self.db.acquire() as conn, conn.transaction():
                await chainstate.move_cursor(conn, lease, self.name, cursor, cursor)
                await self._record_transfers(conn, pending)
                dropped = []
                if complete:
                    dropped = await deposits.orphan_unseen_pending(
                        conn, self.name, {(t.txid, t.position) for t in pending}
                    )
        except FencedOut:
            raise
        except (ChaingateError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            self.metrics.step_errors.labels(self.name, f"mempool:{type(exc).__name__}").inc()
            log.warning(
                "mempool_pass_failed",
                network=self.name,
                error=str(exc),
                error_type=type(exc).__name__,
            )
            return
        for row in dropped:
            log.info(
                "pending_dropped", network=self.name, txid=row["txid"], position=row["position"]
            )

    # --- crediting ----------------------------------------------------------------------------
    async def _credit(self, lease: Lease, head: ChainHead, scanned_to: int) -> int:
        finalized = head.finalized if self.network.solidity_finality else None
        if self.network.solidity_finality and finalized is None:
            return 0  # finality demanded but not reported: credit nothing rather than guess
        async with self.db.acquire() as conn, conn.transaction():
            # Fenced, and the cursor held where we scanned to while crediting below it.
            await chainstate.move_cursor(conn, lease, self.name, scanned_to, scanned_to)
            # Counted on the chain we verified and linked (the cursor), never past it on the
            # word of whatever head an endpoint reported.
            verified_tip = min(head.number, scanned_to)
            await deposits.refresh_confirmations(conn, self.name, verified_tip)
            due = await deposits.credit_due(conn, self.name, scanned_to, finalized)
            for r in due:
                expected = credit_key(self.name, r["txid"], r["position"], r["credit_generation"])
                if r["credit_key"] != expected:  # the store's spelling drifted from the ledger's
                    raise ChaingateError(f"credit key {r['credit_key']!r} is not {expected!r}")
            await outbox.enqueue_many(
                conn, "credit", [(r["credit_key"], _credit(r["credit_key"], r).body()) for r in due]
            )
        credited = len(due)
        # One info event per pass (a catch-up pass credits thousands; a line each cost as much
        # as the scan), the detail per deposit at debug.
        if due:
            log.info(
                "deposits_credited",
                network=self.name,
                count=credited,
                blocks=f"{due[0]['block_number']}..{due[-1]['block_number']}",
            )
        for row in due:
            log.debug(
                "deposit_credited",
                network=self.name,
                txid=row["txid"],
                position=row["position"],
                asset=row["asset"],
                amount=str(int(row["amount"])),
                user_id=row["user_id"],
            )
        self.metrics.credits.labels(self.name).inc(credited)
        return credited


def _credit(key: str, row: asyncpg.Record) -> Credit:
    return Credit(
        idempotency_key=key,
        user_id=row["user_id"],
        network=row["network"],
        asset=row["asset"],
        amount=int(row["amount"]),
        decimals=row["decimals"],
        txid=row["txid"],
        position=row["position"],
        block_number=row["block_number"],
    )


def poll_wait(interval: float, started: float, loop: asyncio.AbstractEventLoop) -> float:
    """Seconds to wait after a caught-up step that started at ``started`` (loop time): the
    head is read every ``interval``, so a block found just after one read waits at most one
    interval, not the step's own time on top of it. At least a fifth of the interval, so a
    step slower than the interval does not turn into polling without a pause."""
    return max(interval - (loop.time() - started), interval / 5)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


__all__ = ["DepositStatus", "StepResult", "Watcher"]
