"""Balance reconciliation: the safety net under the watcher (SPEC section 5).

Some ways native coin reaches a deposit address leave no trace the watcher can read without a
tracing endpoint: ETH sent by a contract (a smart wallet, an exchange's batch sender, a
selfdestruct), a validator withdrawal, a block reward. Each round, for the next chunk of one
network's issued deposit addresses (rotating through all of them), the reconciler reads their
native balances at a block ``H`` and compares them with what the recorded deposits explain:

- ``H = min(watcher cursor, head - confirmations + 1)``: every block up to ``H`` has been scanned
  (so a deposit the watcher will record is never mistaken for an unexplained one) and is as deep
  as a credit needs. The balances are read at the block HASH the watcher stored for ``H``, so they
  describe exactly the chain the recorded deposits describe.
- actual > expected: ``unexplained_balance`` (warning); actual < expected: ``balance_shortfall``
  (critical: funds left an address we never send from). Nothing is credited automatically:
  without a txid there is no (network, txid, position) key; ops decides (docs/runbook.md).
- Each address's alerted excess / shortfall is stored, so a discrepancy alerts once and only a
  NEW part of it (a further inflow, a further outflow) alerts again, for that part.

Chain-agnostic: a network is reconciled when its adapter is a ``BalanceReader``.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from dataclasses import dataclass, field

import asyncpg
import structlog

from chaingate.chains.base import BalanceReader, ChainAdapter
from chaingate.domain import AddressRow, AlertKind, AlertSeverity, NewAlert
from chaingate.errors import ChaingateError, ConfigError
from chaingate.metrics import ReconcileMetrics
from chaingate.store import chainstate, leases
from chaingate.store import reconcile as store
from chaingate.store.alerts import raise_alert
from chaingate.store.leases import Lease

log = structlog.get_logger(__name__)

UNEXPLAINED = AlertKind.UNEXPLAINED_BALANCE
SHORTFALL = AlertKind.BALANCE_SHORTFALL
# Failures of the outside world (endpoints, the database) rather than of this code.
_EXPECTED_ERRORS = (ChaingateError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


@dataclass(frozen=True, slots=True)
class Verdict:
    alerted_excess: int  # to store: the part of the current excess ops has been told about
    alerted_shortfall: int
    kind: AlertKind | None = None  # an alert to raise now, for ``amount`` (the newly found part)
    amount: int = 0


def judge(actual: int, expected: int, alerted_excess: int, alerted_shortfall: int) -> Verdict:
    """Compare one address's balance with its expected balance, given what was alerted before."""
    excess, shortfall = max(actual - expected, 0), max(expected - actual, 0)
    if excess > alerted_excess:
        return Verdict(excess, 0, UNEXPLAINED, excess - alerted_excess)
    if shortfall > alerted_shortfall:
        return Verdict(0, shortfall, SHORTFALL, shortfall - alerted_shortfall)
    # Nothing new. Remember only what is still there, so that if part of a mismatch goes away
    # and comes back (funds out, then in again), the comeback is reported.
    return Verdict(min(excess, alerted_excess), min(shortfall, alerted_shortfall))


@dataclass(frozen=True, slots=True)
class RoundResult:
    height: int | None = None  # None: nothing to reconcile yet (no cursor, no addresses)
    checked: int = 0
    alerts: list[NewAlert] = field(default_factory=list)
    skipped: str | None = None  # why the round compared nothing


class Reconciler:
    """Reconciles the native balances of one network's deposit addresses, round by round."""

    def __init__(
        self,
        adapter: ChainAdapter,
        db: asyncpg.Pool,
        *,
        metrics: ReconcileMetrics | None = None,
        batch: int | None = None,
        interval: float | None = None,
    ) -> None:
        if not isinstance(adapter, BalanceReader):
            raise ConfigError(f"{adapter.network.name}: the adapter cannot read balances")
        self.adapter = adapter
        self.network = adapter.network
        self.name = self.network.name
        self.asset = self.network.native_asset
        # Deep enough to credit: a block at H has this many confirmations.
        self.depth = self.asset.required_confirmations(0, self.network.confirmations)
        self.db = db
        self.metrics = metrics or ReconcileMetrics()
        self.batch = batch or self.network.reconcile_batch
        self.interval = interval or self.network.reconcile_interval
        self.lease_name = f"reconcile:{self.name}"
        self.holder = leases.new_holder_id()
        # Held for one round (balance reads of one chunk and one comparison transaction).
        self.lease_ttl = 120.0

    async def run(self, stop: asyncio.Event) -> None:
        """A round every ``interval`` until ``stop``; a failed round is logged and retried."""
        while not stop.is_set():
            try:
                await self.round()
            except Exception as exc:
                # A safety net must never take the deposit path down with it: whatever broke
                # (an endpoint, the database, a bug), log it, count it and try again next round.
                self.metrics.round_errors.labels(self.name, type(exc).__name__).inc()
                log.warning(
                    "reconcile_round_failed",
                    network=self.name,
                    error=str(exc),
                    error_type=type(exc).__name__,
                    exc_info=not isinstance(exc, _EXPECTED_ERRORS),  # a bug: show where
                )
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval)

    async def round(self) -> RoundResult:
        """One round under the network's reconcile lease: two instances never compare at once,
        and a round that outlived its lease is refused (FencedOut) rather than recorded."""
        lease = await leases.acquire(self.db, self.lease_name, self.holder, self.lease_ttl)
        if lease is None:
            return RoundResult(skipped="another_instance")
        try:
            return await self._round(lease)
        finally:
            with suppress(*_EXPECTED_ERRORS):
                await leases.release(self.db, lease)

    async def _round(self, lease: Lease) -> RoundResult:
        head = (await self.adapter.head()).number
        async with self.db.acquire() as conn:
            cursor = await chainstate.get_cursor(conn, self.name)
            if cursor is None:
                return RoundResult(skipped="no_cursor")
            height = min(cursor, head - self.depth + 1)
            if height < 0:
                return RoundResult(skipped="chain_too_short")
            block_hash = await chainstate.stored_hash(conn, self.name, height)
            after, chunk = await store.next_chunk(conn, self.name, self.batch)
        if not chunk:
            return RoundResult(skipped="no_addresses")
        keys = [row.match_key for row in chunk]
        actual = await self.adapter.native_balances(keys, height, block_hash)
        async with self.db.acquire() as conn, conn.transaction():
            await leases.check(conn, lease)
            if not await self._still_canonical(conn, height, block_hash):
                log.info("reconcile_round_reorg", network=self.name, height=height)
                return RoundResult(height=height, skipped="reorg")
            alerts = await self._compare(conn, chunk, actual, height, block_hash)
            last = chunk[-1].id if len(chunk) == self.batch else 0  # 0: start over next round
            await store.advance(conn, self.name, after, last, wrapped=last == 0)
        self.metrics.checked.labels(self.name).inc(len(chunk))
        self.metrics.height.labels(self.name).set(height)
        log.info(
            "reconcile_round",
            network=self.name,
            height=height,
            checked=len(chunk),
            alerts=len(alerts),
        )
        return RoundResult(height=height, checked=len(chunk), alerts=alerts)

    async def _still_canonical(
        self, conn: asyncpg.Connection, height: int, block_hash: str | None
    ) -> bool:
        """The watcher's view still holds block ``height`` as the balances were read there: after
        a rollback below it, the deposits would describe another branch than the balances."""
        cursor = await chainstate.get_cursor(conn, self.name)
        stored = await chainstate.stored_hash(conn, self.name, height)
        # No stored hash while the cursor is above: pruned from the reorg window, not rolled back.
        return cursor is not None and cursor >= height and stored in (None, block_hash)

    async def _compare(
        self,
        conn: asyncpg.Connection,
        chunk: list[AddressRow],
        actual: dict[str, int],
        height: int,
        block_hash: str | None,
    ) -> list[NewAlert]:
        symbol = self.asset.symbol
        keys = [row.match_key for row in chunk]
        expected = await store.expected_native_balances(conn, self.name, symbol, keys, height)
        before = await store.last_checks(conn, [row.id for row in chunk], symbol)
        results: list[store.CheckResult] = []
        alerts: list[NewAlert] = []
        for row in chunk:
            last = before.get(row.id)
            if last is not None and last.height > height:
                continue  # another instance already checked a later block
            have, want = actual[row.match_key], expected[row.match_key]
            verdict = judge(
                have,
                want,
                last.alerted_excess if last else 0,
                last.alerted_shortfall if last else 0,
            )
            if verdict.kind is not None:
                alert = self._alert(row, verdict, have, want, height, block_hash)
                if await raise_alert(conn, alert):
                    alerts.append(alert)
                    self.metrics.mismatches.labels(self.name, verdict.kind).inc()
                    log.warning(
                        "alert",
                        kind=verdict.kind,
                        network=self.name,
                        address=row.address,
                        height=height,
                        amount=str(verdict.amount),
                    )
            results.append(
                store.CheckResult(
                    address_id=row.id,
                    network=self.name,
                    asset=symbol,
                    height=height,
                    block_hash=block_hash,
                    actual=have,
                    expected=want,
                    alerted_excess=verdict.alerted_excess,
                    alerted_shortfall=verdict.alerted_shortfall,
                )
            )
        await store.record_checks(conn, results)
        return alerts

    def _alert(
        self,
        row: AddressRow,
        verdict: Verdict,
        actual: int,
        expected: int,
        height: int,
        block_hash: str | None,
    ) -> NewAlert:
        symbol = self.asset.symbol
        if verdict.kind == UNEXPLAINED:
            total_key, total, severity = (
                "unexplained",
                verdict.alerted_excess,
                AlertSeverity.WARNING,
            )
            message = (
                f"{self.name}: {row.address} received {verdict.amount} base units of {symbol} "
                f"that no recorded deposit explains (by block {height}); not credited"
            )
        else:
            total_key, total, severity = (
                "shortfall",
                verdict.alerted_shortfall,
                AlertSeverity.CRITICAL,
            )
            message = (
                f"{self.name}: {row.address} holds {verdict.amount} base units of {symbol} less "
                f"than its recorded deposits (at block {height}); funds left a deposit address"
            )
        assert verdict.kind is not None
        return NewAlert(
            kind=verdict.kind,
            severity=severity,
            message=message,
            dedup_key=f"{verdict.kind}:{self.name}:{row.match_key}:{height}",
            network=self.name,
            asset=symbol,
            amount=verdict.amount,
            user_id=row.user_id,
            details={
                "address": row.address,
                "height": height,
                "block_hash": block_hash,
                "actual": str(actual),
                "expected": str(expected),
                total_key: str(total),
                "previously_alerted": str(total - verdict.amount),
            },
        )


def reconciler_for(
    adapter: ChainAdapter, db: asyncpg.Pool, metrics: ReconcileMetrics | None = None
) -> Reconciler | None:
    """The network's reconciler, or None: reconciliation off, a watch-only network (it issues
    no addresses), or a chain family whose adapter cannot read balances."""
    network = adapter.network
    if not network.reconcile or network.watch_only or not isinstance(adapter, BalanceReader):
        return None
    return Reconciler(adapter, db, metrics=metrics)
