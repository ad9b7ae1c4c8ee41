"""The broadcaster role (`chaingate run --roles broadcaster`): plan, send, track, per network.

It works ``withdrawal_txs`` through the one leased queue (store/queue.py), so several
broadcasters share the rows and a crashed one's rows come back. A row is
- ``signed``: the signer stored its bytes. The withdrawal (and its batch) move to ``signed``,
  the bytes are sent, and the row, the withdrawal and the batch move to ``broadcast``. A crash
  between sending and that bookkeeping sends the SAME bytes again, which the node answers with
  "already known" or, once mined, "nonce too low": both are success;
- ``broadcast``: tracked (``withdrawals/tracker.py``) until confirmed or failed;
- ``confirmed``: still watched until beyond the reorg window (a reorg re-sends its bytes).

Only the stored bytes are ever sent: nothing here can sign (no key, no signer import).
"""

from __future__ import annotations

import asyncio
import re

import asyncpg
import structlog

from chaingate import crashpoints
from chaingate.chains.evm.rpc import EvmRpc, SendOutcome
from chaingate.delivery import run_passes
from chaingate.domain import AlertKind, AlertSeverity, Network, NewAlert
from chaingate.domain.withdrawals import BatchStatus, WithdrawalStatus
from chaingate.errors import ChaingateError
from chaingate.store import withdrawals as withdrawal_rows
from chaingate.store.alerts import raise_alert
from chaingate.store.queue import Claim, LeasedQueue, QueueTable, backoff, worker_name
from chaingate.withdrawals.planner import Planner
from chaingate.withdrawals.status import record_batch_status, record_status, withdrawals_of
from chaingate.withdrawals.tracker import Tracker

log = structlog.get_logger(__name__)
ACTOR = "broadcaster"
_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")


def outgoing_table(network: str, extra: str = "") -> QueueTable:
    """The live transactions of one network (``extra``: a family's own columns). The name goes
    into SQL text, so it is checked."""
    if not _NAME.fullmatch(network):
        raise ValueError(f"unexpected network name {network!r}")
    return QueueTable(
        name="withdrawal_txs",
        returning="""q.id, q.attempts, q.batch_id, q.withdrawal_id, q.network, q.from_address,
                     q.nonce, q.raw_tx, q.txid, q.status, q.block_number, q.block_hash,
                     q.broadcast_at, q.created_at, q.gas_limit, q.fee_cap::text AS fee_cap,
                     q.max_fee_per_gas::text AS max_fee_per_gas,
                     q.max_priority_fee_per_gas::text AS max_priority_fee_per_gas"""
        + (f", {extra}" if extra else ""),
        eligible=f"q.network = '{network}' AND q.status IN ('signed', 'broadcast', 'confirmed')",
        # Oldest due first, not lowest id first: rows being tracked come due again every pass
        # (confirmed ones until they are reorg-window deep), and by id the first claim-full of
        # them would starve a newly signed row for as long as they are watched.
        order="q.next_attempt_at, q.id",
    )


class Broadcaster:
    def __init__(
        self,
        db: asyncpg.Pool,
        network: Network,
        rpc: EvmRpc,
        *,
        lease_seconds: float = 30.0,
        track_every: float | None = None,
        holder: str | None = None,
    ) -> None:
        self._rpc = rpc
        self._setup(db, network, lease_seconds, track_every, holder)
        self.planner = Planner(db, network, rpc)
        self.tracker = Tracker(db, network, rpc, self._queue, self._track_every)

    def _setup(
        self,
        db: asyncpg.Pool,
        network: Network,
        lease_seconds: float,
        track_every: float | None,
        holder: str | None,
        extra: str = "",
    ) -> None:
        """What every chain family's broadcaster shares: the network's outgoing queue
        (``extra``: the family's own columns, see ``outgoing_table``)."""
        self._db = db
        self.network = network
        self._queue = LeasedQueue(
            db,
            outgoing_table(network.name, extra),
            holder=holder or worker_name("broadcaster"),
            lease_seconds=lease_seconds,
        )
        self._track_every = track_every or max(network.block_time, 0.5)

    async def run(self, stop: asyncio.Event) -> None:
        await run_passes(
            self._pass,
            stop,
            interval=self._track_every,
            batch_size=1_000_000,  # never "full": tracking waits for blocks anyway
            event=f"broadcaster_{self.network.name}",
        )

    async def _pass(self) -> int:
        await self.planner.plan_once()
        return await self.work_once()

    async def work_once(self, limit: int = 50) -> int:
        """Claim due transactions of the network and send or track each; how many claimed."""
        claims = await self._queue.claim(limit)
        async with self._queue.keep_alive(claims):
            for claim in claims:
                try:
                    if claim.record["status"] == "signed":
                        await self.send(claim)
                    else:
                        await self.tracker.track(claim)
                except ChaingateError as exc:
                    # The node failed or lied (or a row could not be worked): nothing was
                    # decided; the same bytes later.
                    retry_in = backoff(claim.attempts, 1.0, 60.0)
                    await self._queue.fail(claim, f"{type(exc).__name__}: {exc}", retry_in)
                    log.warning(
                        "withdrawal_tx_retry_later",
                        network=self.network.name,
                        txid=claim.record["txid"],
                        error=type(exc).__name__,
                    )
        return len(claims)

    async def send(self, claim: Claim) -> None:
        row = claim.record
        await self._mark_signed(row)
        crashpoints.crash_point(crashpoints.RECORDED_BEFORE_BROADCAST)
        outcome = await self._rpc.send_raw_transaction("0x" + row["raw_tx"], row["txid"])
        crashpoints.crash_point(crashpoints.BROADCAST_BEFORE_BOOKKEEPING)
        if outcome is SendOutcome.UNDERPRICED:
            await self._underpriced(claim)
            return
        if (
            outcome is SendOutcome.NONCE_TOO_LOW
            and await self._rpc.transaction(row["txid"]) is None
        ):
            # The nonce went to another transaction: the tracker decides, after reorg depth,
            # whether this withdrawal failed. Until then it counts as sent.
            log.warning("withdrawal_nonce_used_elsewhere", txid=row["txid"], nonce=row["nonce"])
        await self.sent(claim, outcome.value)

    async def sent(self, claim: Claim, outcome: str) -> None:
        """The row's bytes went out: it, its withdrawal(s) and its batch move to ``broadcast``
        (every family; what counts as sent is the family's ``send``)."""
        row = claim.record
        async with self._db.acquire() as conn, conn.transaction():
            done = await conn.fetchval(
                """UPDATE withdrawal_txs
                      SET status = 'broadcast', broadcast_at = coalesce(broadcast_at, now()),
                          next_attempt_at = now() + make_interval(secs => $3),
                          lease_token = NULL
                    WHERE id = $1 AND lease_token = $2 AND status = 'signed' RETURNING 1""",
                row["id"],
                claim.token,
                self._track_every,
            )
            if done is None:
                return  # another broadcaster holds the row now; it does the bookkeeping
            await self._advance(conn, row, WithdrawalStatus.BROADCAST, BatchStatus.BROADCAST)
            # A replacement's txid is the one to look for from now on.
            for withdrawal_id in await withdrawals_of(conn, row):
                await withdrawal_rows.set_progress(conn, withdrawal_id, txid=row["txid"])
        log.info(
            "withdrawal_broadcast",
            network=self.network.name,
            txid=row["txid"],
            nonce=row["nonce"],
            outcome=outcome,
        )

    async def _mark_signed(self, row: asyncpg.Record) -> None:
        """approved -> signing -> signed for the withdrawal and its batch (each step once)."""
        async with self._db.acquire() as conn, conn.transaction():
            await self._advance(conn, row, WithdrawalStatus.SIGNING, BatchStatus.SIGNING)
            await self._advance(conn, row, WithdrawalStatus.SIGNED, BatchStatus.SIGNED)

    async def _advance(
        self,
        conn: asyncpg.Connection,
        row: asyncpg.Record,
        withdrawal_to: WithdrawalStatus,
        batch_to: BatchStatus,
    ) -> None:
        order = list(WithdrawalStatus)
        for withdrawal_id in await withdrawals_of(conn, row):
            current = await conn.fetchval(
                "SELECT status FROM withdrawals WHERE id = $1 FOR UPDATE", withdrawal_id
            )
            if current is not None and order.index(WithdrawalStatus(current)) < order.index(
                withdrawal_to
            ):
                await record_status(
                    conn, withdrawal_id, withdrawal_to, actor=ACTOR, txid=row["txid"]
                )
        batch_order = list(BatchStatus)
        batch_now = await conn.fetchval(
            "SELECT status FROM batches WHERE id = $1 FOR UPDATE", row["batch_id"]
        )
        if batch_now in (BatchStatus.APPROVED, BatchStatus.SIGNING, BatchStatus.SIGNED) and (
            batch_order.index(BatchStatus(batch_now)) < batch_order.index(batch_to)
        ):
            await record_batch_status(conn, row["batch_id"], batch_to, actor=ACTOR)

    async def _underpriced(self, claim: Claim) -> None:
        row = claim.record
        retry_in = backoff(claim.attempts, 5.0, 300.0)
        await self._queue.fail(
            claim, "another transaction holds the nonce at a higher fee", retry_in
        )
        async with self._db.acquire() as conn:
            await raise_alert(
                conn,
                NewAlert(
                    kind=AlertKind.WITHDRAWAL_NONCE_CONTESTED,
                    severity=AlertSeverity.CRITICAL,
                    network=self.network.name,
                    txid=row["txid"],
                    message=f"{self.network.name}: a foreign transaction holds nonce {row['nonce']}"
                    f" of {row['from_address']} at a higher fee than withdrawal tx {row['txid']}",
                    dedup_key=f"withdrawal_nonce_contested:{row['txid']}",
                ),
            )
