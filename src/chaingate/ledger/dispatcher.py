"""Outbox dispatcher: delivers ``ledger_outbox`` rows to the ledger, each exactly once as the
ledger sees it.

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` and a lease (``next_attempt_at`` pushed forward
and committed before sending), so several dispatchers never send a row at the same time and a
crashed dispatcher's rows come back when the lease runs out. A row is sent with its own stored
payload, which carries its idempotency key, so a resend after any crash gets the ledger's first
answer instead of a second credit. Delivery is recorded only after the ledger answered.

Order: a reversal is not claimed while the credit it reverses (payload ``credit_key`` = that
row's ``idempotency_key``) is undelivered, a deposit's new credit (re-mined after a reorg) waits
for the reversal of its earlier credit, and a withdrawal event waits for the earlier events of
the same withdrawal. A row the ledger refuses (4xx) is parked, never dropped: it keeps its
error, stops being retried, and raises a critical alert.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog
from prometheus_client import CollectorRegistry, Counter

from chaingate.aio import task_group
from chaingate.delivery import Connect, quick_retries, run_passes, wake_on_notify
from chaingate.domain import AlertKind, AlertSeverity, NewAlert
from chaingate.errors import LedgerRejectedError, LedgerUnavailableError
from chaingate.ledger.client import LedgerClient
from chaingate.ledger.errors import LedgerRequestRejectedError
from chaingate.ledger.messages import KIND_PATHS
from chaingate.store.alerts import raise_alert
from chaingate.store.outbox import CHANNEL
from chaingate.store.queue import Claim, LeasedQueue, QueueTable, backoff, worker_name
from chaingate.withdrawals.feedback import refused_by_ledger

log = structlog.get_logger(__name__)

# A ledger refusing our signature is misconfigured (secret, clock), not refusing the message:
# retry later instead of parking every row.
_AUTH_STATUSES = frozenset({401, 403})

# The claim's ordering rules (over alias q). jsonb goes out as text (``::text``) so the
# dispatcher works the same on a plain pool and on the service's pool, whose jsonb codec
# (store.db) would otherwise decode it to a dict.
OUTBOX = QueueTable(
    name="ledger_outbox",
    done_column="delivered_at",
    returning="q.id, q.idempotency_key, q.kind, q.payload::text AS payload, q.attempts",
    eligible="""
        NOT (q.kind = 'reversal' AND EXISTS (
            SELECT 1 FROM ledger_outbox c
            WHERE c.idempotency_key = q.payload->>'credit_key' AND c.delivered_at IS NULL))
        AND NOT (q.kind = 'withdrawal_event' AND EXISTS (
            SELECT 1 FROM ledger_outbox w
            WHERE w.kind = 'withdrawal_event' AND w.delivered_at IS NULL AND w.id < q.id
              AND w.payload->>'withdrawal_id' = q.payload->>'withdrawal_id'))
        -- The new credit of a deposit re-mined after a reorg waits for the reversal of its old
        -- credit: the ledger refuses a second standing credit of one deposit (it would park it).
        AND NOT (q.kind = 'credit' AND EXISTS (
            SELECT 1 FROM ledger_outbox r
            JOIN ledger_outbox c ON c.idempotency_key = r.payload->>'credit_key'
            WHERE r.kind = 'reversal' AND r.delivered_at IS NULL AND r.id < q.id
              AND c.id <> q.id
              AND c.payload->>'network' = q.payload->>'network'
              AND c.payload->>'txid' = q.payload->>'txid'
              AND c.payload->>'position' = q.payload->>'position'))""",
)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    idempotency_key: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    claim: Claim


class DispatcherMetrics:
    """Counters of the dispatcher, registered on the registry the service hands in."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.delivered = Counter(
            "chaingate_ledger_outbox_delivered",
            "Outbox messages the ledger acknowledged",
            ["kind"],
            registry=registry,
        )
        self.failed = Counter(
            "chaingate_ledger_outbox_failed",
            "Outbox delivery attempts that will be retried",
            ["kind"],
            registry=registry,
        )
        self.parked = Counter(
            "chaingate_ledger_outbox_parked",
            "Outbox messages the ledger refused (alerted)",
            ["kind"],
            registry=registry,
        )


# Called in the transaction that parks a refused row: (conn, kind, payload, error code, error).
RefusalHook = Callable[[asyncpg.Connection, str, dict[str, Any], str, str], Awaitable[None]]


class OutboxDispatcher:
    def __init__(
        self,
        db_pool: asyncpg.Pool,
        client: LedgerClient,
        *,
        batch_size: int = 100,
        lease_seconds: float = 30,
        max_backoff: float = 300,
        base_backoff: float = 1.0,
        send_attempts: int = 3,
        retry_wait: float = 0.2,
        registry: CollectorRegistry | None = None,
        concurrency: int = 8,
        holder: str | None = None,
        on_refused: RefusalHook = refused_by_ledger,
        listen: Connect | None = None,
        record_wait: float = 0.1,
    ) -> None:
        """``listen`` opens a database connection of the dispatcher's own on which ``run``
        LISTENs for new rows (store/outbox.py notifies at commit) and starts a pass at once,
        instead of after up to one interval; without it, ``run`` only polls. The ledger's
        answers are recorded together, up to ``record_wait`` s of them at a time."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._db = db_pool
        self._concurrency = concurrency
        self._client = client
        self._batch_size = batch_size
        self._queue = LeasedQueue(
            db_pool, OUTBOX, holder=holder or worker_name("dispatcher"), lease_seconds=lease_seconds
        )
        self._max_backoff = float(max_backoff)
        self._base_backoff = base_backoff
        self._send_attempts = send_attempts
        self._retry_wait = retry_wait
        self.metrics = DispatcherMetrics(registry or CollectorRegistry())
        self._last_claimed = 0
        self._on_refused = on_refused
        self._listen = listen
        self._record_wait = record_wait

    async def run(self, stop: asyncio.Event, interval: float) -> None:
        """Dispatch until ``stop`` is set; a full batch is followed at once by the next, and a
        notified new row (with ``listen``) cuts the wait of ``interval`` short."""
        event = "ledger_dispatcher"
        if self._listen is None:
            await run_passes(
                self._pass, stop, interval=interval, batch_size=self._batch_size, event=event
            )
            return
        wake = asyncio.Event()
        async with task_group() as group:
            group.create_task(wake_on_notify(self._listen, CHANNEL, wake, stop, event=event))
            await run_passes(
                self._pass,
                stop,
                interval=interval,
                batch_size=self._batch_size,
                event=event,
                wake=wake,
            )

    async def _pass(self) -> int:
        await self.dispatch_once()
        return self._last_claimed

    async def dispatch_once(self) -> int:
        """Claim due rows and send them; the number the ledger acknowledged.

        The rows of one claim never depend on each other (the claim leaves out a reversal
        whose credit is undelivered, a re-credit whose reversal is, and a withdrawal event
        whose predecessor is), so up to ``concurrency`` of them are in flight at once, taken
        in id order. Once the ledger is down or refuses our signature, no further row is
        started: the ones not yet sent are deferred with the failed row's backoff.
        """
        rows = await self._claim()
        self._last_claimed = len(rows)
        queue = list(reversed(rows))  # pop() takes the lowest id first
        delivered = 0
        halted: float | None = None  # the backoff, once the ledger cannot take more
        # Answers go to one recorder, which writes all that arrived meanwhile in one statement:
        # a sender takes its next row at once instead of waiting for a commit per row.
        answered: asyncio.Queue[tuple[OutboxRow, dict[str, Any]] | None] = asyncio.Queue()

        async def recorder() -> None:
            nonlocal delivered
            loop = asyncio.get_running_loop()
            finished = False
            while not finished:
                # Up to record_wait s of answers in one statement: a commit per few rows would
                # compete with the sends for the database (and, on one server, with the ledger).
                batch = [await answered.get()]
                until = loop.time() + self._record_wait
                while batch[-1] is not None and len(batch) < self._batch_size:
                    try:
                        batch.append(await asyncio.wait_for(answered.get(), until - loop.time()))
                    except TimeoutError:
                        break
                finished = batch[-1] is None  # put last, once every sender has ended
                delivered += await self._record_deliveries([a for a in batch if a is not None])

        async def worker() -> None:
            nonlocal halted
            while queue and halted is None:
                row = queue.pop()
                try:
                    answer = await self._send(row)
                except LedgerUnavailableError as exc:
                    retry_in = await self._record_failure(row, exc)
                    halted = retry_in if halted is None else halted
                    continue
                except LedgerRejectedError as exc:
                    if _status_of(exc) in _AUTH_STATUSES:
                        retry_in = await self._record_failure(row, exc)
                        halted = retry_in if halted is None else halted
                        await self._alert_auth_failure(exc)
                    else:
                        await self._park(row, str(exc), _status_of(exc), _code_of(exc))
                    continue
                answered.put_nowait((row, answer))

        # A database error in one worker or the recorder stops the others and is raised as
        # itself (run() tells it apart); rows in flight or answered but not yet recorded stay
        # leased and come back, with their keys, later (the ledger then answers as before).
        async with self._queue.keep_alive([r.claim for r in rows]), task_group() as group:
            group.create_task(recorder())
            async with task_group() as senders:
                for _ in range(min(self._concurrency, len(rows))):
                    senders.create_task(worker())
            answered.put_nowait(None)
        if halted is not None:
            await self._queue.defer([r.claim for r in queue], halted)
        return delivered

    async def _claim(self) -> list[OutboxRow]:
        return [
            OutboxRow(
                id=c.id,
                idempotency_key=c.record["idempotency_key"],
                kind=c.record["kind"],
                payload=json.loads(c.record["payload"]),
                attempts=c.attempts,
                claim=c,
            )
            for c in await self._queue.claim(self._batch_size)
        ]

    async def _send(self, row: OutboxRow) -> dict[str, Any]:
        path = KIND_PATHS.get(row.kind)
        if path is None or row.payload.get("idempotency_key") != row.idempotency_key:
            # A malformed row would be credited under a key we do not track: refuse it loudly.
            raise LedgerRequestRejectedError(
                "outbox row is malformed (unknown kind or payload key differs from the row key)",
                status=0,
                error_code="malformed_outbox_row",
            )
        retrying = quick_retries(self._send_attempts, self._retry_wait, LedgerUnavailableError)
        answer: dict[str, Any] = await retrying(self._client.post, path, row.payload)
        return answer

    async def _record_deliveries(self, answers: list[tuple[OutboxRow, dict[str, Any]]]) -> int:
        """Record the ledger's answers in one statement; how many the ledger acknowledged."""
        recorded = await self._queue.complete_many(
            [(row.claim, json.dumps(answer)) for row, answer in answers],
            extra_set="response = r.value::jsonb",
        )
        for row, _ in answers:
            if row.id not in recorded:
                # Our lease ran out and another dispatcher holds the row: it sends it again
                # under the same key and records the ledger's (same) answer itself.
                log.warning("ledger_outbox_lease_lost", outbox_id=row.id, kind=row.kind)
                continue
            self.metrics.delivered.labels(row.kind).inc()
            log.info(
                "ledger_outbox_delivered",
                outbox_id=row.id,
                kind=row.kind,
                idempotency_key=row.idempotency_key,
                attempts=row.attempts + 1,
            )
        return len(answers)

    async def _record_failure(self, row: OutboxRow, exc: Exception) -> float:
        retry_in = backoff(row.attempts, self._base_backoff, self._max_backoff)
        await self._queue.fail(row.claim, str(exc), retry_in)
        self.metrics.failed.labels(row.kind).inc()
        log.warning(
            "ledger_outbox_retry_later",
            outbox_id=row.id,
            kind=row.kind,
            idempotency_key=row.idempotency_key,
            attempts=row.attempts + 1,
            retry_in=round(retry_in, 3),
            error=type(exc).__name__,
        )
        return retry_in

    async def _park(self, row: OutboxRow, error: str, status: int, code: str) -> None:
        payload = row.payload
        amount = payload.get("amount")
        async with self._db.acquire() as conn, conn.transaction():
            if not await self._queue.park(row.claim, error, conn=conn):
                return  # another dispatcher holds the row now; it decides
            await raise_alert(
                conn,
                NewAlert(
                    kind=AlertKind.LEDGER_REJECTED,
                    severity=AlertSeverity.CRITICAL,
                    network=_text(payload.get("network")),
                    asset=_text(payload.get("asset")),
                    amount=int(amount) if isinstance(amount, str) and amount.isdigit() else None,
                    txid=_text(payload.get("txid")),
                    user_id=_text(payload.get("user_id")),
                    message=f"ledger refused {row.kind} {row.idempotency_key}: {error}"[:2000],
                    details={
                        "outbox_id": row.id,
                        "idempotency_key": row.idempotency_key,
                        "kind": row.kind,
                        "status": status,
                        "error_code": code,
                    },
                    dedup_key=f"ledger_rejected:{row.idempotency_key}",
                ),
            )
            # What the refusal means for the sender's own records (a withdrawal whose hold was
            # refused is cancelled), in the same transaction as the park.
            await self._on_refused(conn, row.kind, payload, code, error)
        self.metrics.parked.labels(row.kind).inc()
        log.error(
            "ledger_outbox_parked",
            outbox_id=row.id,
            kind=row.kind,
            idempotency_key=row.idempotency_key,
            status=status,
            code=code,
        )

    async def _alert_auth_failure(self, exc: LedgerRejectedError) -> None:
        # One alert per day: acknowledged alerts keep their dedup key for good.
        day = datetime.now(UTC).date().isoformat()
        async with self._db.acquire() as conn:
            await raise_alert(
                conn,
                NewAlert(
                    kind=AlertKind.LEDGER_AUTH_FAILED,
                    severity=AlertSeverity.CRITICAL,
                    message="the ledger refuses our signed requests (shared secret or clock); "
                    "outbox delivery is stalled",
                    details={"status": _status_of(exc), "error_code": _code_of(exc)},
                    dedup_key=f"ledger_auth_failed:{day}",
                ),
            )
        log.error("ledger_auth_failed", status=_status_of(exc), code=_code_of(exc))


def _status_of(exc: LedgerRejectedError) -> int:
    return exc.status if isinstance(exc, LedgerRequestRejectedError) else 0


def _code_of(exc: LedgerRejectedError) -> str:
    return exc.error_code if isinstance(exc, LedgerRequestRejectedError) else "rejected"


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
