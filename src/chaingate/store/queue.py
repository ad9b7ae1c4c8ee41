"""One leased work queue over a PostgreSQL table: claim, renew, complete, fail, defer, park.

Every table worked this way (``ledger_outbox``, ``alerts``, the signer jobs, the broadcaster's
work) follows ONE column convention, so one piece of code claims and records for all of them:

===================  ============================================================================
column               meaning
===================  ============================================================================
``id``               ``bigserial PRIMARY KEY``; claims take rows in id order
``attempts``         ``integer NOT NULL DEFAULT 0``; counted by complete, fail and park
``next_attempt_at``  ``timestamptz NOT NULL DEFAULT now()``; due when ``<= now()``. While a row is
                     leased it is the lease's expiry; ``'infinity'`` while parked
``leased_by``        ``text NULL``; who holds (or last held) the lease: ``host:pid:role``
``lease_token``      ``bigint NULL``; a fresh value of the sequence ``queue_lease_token`` at every
                     claim. Complete, fail, defer, park and renew match it, so a worker whose lease
                     ran out and whose row was claimed again cannot finish that row any more
``delivered_at``     the done column: ``delivered_at timestamptz NULL`` on the two senders'
  / ``done_at``      tables (``ledger_outbox``, ``alerts``), ``done_at timestamptz NULL`` on every
                     new table. A row with it set is never claimed again
``parked_at``        ``timestamptz NULL``; set when a row is refused for good (kept, alerted,
                     never retried until an operator un-parks it)
``last_error``       ``text NULL``; the last failure, short and free of secrets
===================  ============================================================================

plus the partial index ``(next_attempt_at, id) WHERE <done column> IS NULL``.

Why it is safe with several workers: the claim is ``FOR UPDATE SKIP LOCKED`` and commits the lease
(``next_attempt_at`` pushed forward, a new ``lease_token``) before any work starts, so no two
workers hold a row at once. A worker keeps its lease alive while it works (``keep_alive``); a
crashed worker's rows come back when the lease runs out. A slow worker whose lease ran out anyway
finds its ``complete`` refused (False) because the row carries another worker's token: "jobs may
run twice", so the work itself must be idempotent (an idempotency key, or the completion in the
same transaction as the work's effects, which then rolls back).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg
import structlog

log = structlog.get_logger(__name__)

_MAX_EXPONENT = 30


def backoff(attempts: int, base: float, maximum: float) -> float:
    """Seconds before the next attempt of a row that failed ``attempts`` times before:
    ``base * 2**attempts`` capped at ``maximum``, with jitter so workers do not retry in step."""
    delay = min(maximum, base * 2.0 ** min(attempts, _MAX_EXPONENT))
    return delay * random.uniform(0.5, 1.0)


def worker_name(role: str) -> str:
    """A worker id for ``role``: ``host:pid:role:<random>``, host and pid for people, the random
    part so that two workers in one process (tests, several roles) are never one holder."""
    return f"{socket.gethostname()}:{os.getpid()}:{role}:{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class QueueTable:
    """How one table is worked. Every string goes into SQL text, so it comes from code, never
    from input: ``returning`` the columns a claim returns (over alias ``q``), ``eligible`` an
    extra claim condition over alias ``q`` (ordering rules such as "a reversal waits for its
    credit"), ``order`` which due rows a claim takes first."""

    name: str
    done_column: str = "done_at"
    returning: str = "q.*"
    eligible: str = "TRUE"
    order: str = "q.id"


@dataclass(frozen=True, slots=True)
class Claim:
    """One leased row: its id, the token that proves the lease, and the columns claimed."""

    id: int
    token: int
    attempts: int
    record: asyncpg.Record


class LeasedQueue:
    """Claims and records rows of one table for one worker (``holder``)."""

    def __init__(
        self, db: asyncpg.Pool, table: QueueTable, *, holder: str, lease_seconds: float
    ) -> None:
        self._db = db
        self.table = table
        self.holder = holder
        self.lease_seconds = float(lease_seconds)
        t, done = table.name, table.done_column
        self._claim_sql = f"""
            WITH due AS (
                SELECT q.id FROM {t} q
                WHERE q.{done} IS NULL AND q.parked_at IS NULL AND q.next_attempt_at <= now()
                  AND ({table.eligible})
                ORDER BY {table.order}
                LIMIT $1
                FOR UPDATE OF q SKIP LOCKED
            )
            UPDATE {t} q
            SET next_attempt_at = now() + make_interval(secs => $2), leased_by = $3,
                lease_token = nextval('queue_lease_token')
            FROM due WHERE q.id = due.id
            RETURNING q.lease_token AS queue_lease_token, {table.returning}"""
        # Every write below matches (id, token): a row someone else claimed since is left alone.
        self._mine = f"id = $1 AND lease_token = $2 AND {done} IS NULL"
        self._renew_sql = f"""
            UPDATE {t} q SET next_attempt_at = now() + make_interval(secs => $3)
            FROM unnest($1::bigint[], $2::bigint[]) AS r(id, token)
            WHERE q.id = r.id AND q.lease_token = r.token AND q.{done} IS NULL
              AND q.parked_at IS NULL
            RETURNING q.id"""
        self._defer_sql = f"""
            UPDATE {t} q SET next_attempt_at = now() + make_interval(secs => $3),
                             lease_token = NULL
            FROM unnest($1::bigint[], $2::bigint[]) AS r(id, token)
            WHERE q.id = r.id AND q.lease_token = r.token AND q.{done} IS NULL"""

    async def claim(self, limit: int, *, conn: asyncpg.Connection | None = None) -> list[Claim]:
        """Lease up to ``limit`` due rows (committed before this returns), lowest id first."""
        async with _connection(self._db, conn) as c, c.transaction():
            # A short OLTP statement: JIT compiling it (which PostgreSQL starts once the
            # ordering rules' estimated cost grows with the table) costs more than it runs.
            await c.execute("SET LOCAL jit = off")
            records = await c.fetch(self._claim_sql, limit, self.lease_seconds, self.holder)
        claims = [
            Claim(id=r["id"], token=r["queue_lease_token"], attempts=r["attempts"], record=r)
            for r in records
        ]
        return sorted(claims, key=lambda c: c.id)

    async def renew(self, claims: Sequence[Claim]) -> set[int]:
        """Push the leases of ``claims`` forward; the ids still ours (the rest were lost)."""
        if not claims:
            return set()
        async with self._db.acquire() as conn:
            rows = await conn.fetch(
                self._renew_sql,
                [c.id for c in claims],
                [c.token for c in claims],
                self.lease_seconds,
            )
        return {r["id"] for r in rows}

    @contextlib.asynccontextmanager
    async def keep_alive(self, claims: Sequence[Claim]) -> AsyncIterator[None]:
        """Renew the leases of ``claims`` every third of a lease while the block runs, so work
        that outlives one lease is not claimed by another worker meanwhile."""
        if not claims:
            yield
            return
        task = asyncio.create_task(self._renew_forever(list(claims)))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _renew_forever(self, claims: list[Claim]) -> None:
        while claims:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                kept = await self.renew(claims)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                # The lease may run out; the token still stops a late completion.
                log.warning("queue_lease_renew_failed", table=self.table.name, error=str(exc))
                continue
            lost = [c.id for c in claims if c.id not in kept]
            if lost:
                log.warning("queue_lease_lost", table=self.table.name, ids=lost[:20])
            claims = [c for c in claims if c.id in kept]

    async def complete(
        self,
        claim: Claim,
        *,
        conn: asyncpg.Connection | None = None,
        extra_set: str = "",
        args: Sequence[object] = (),
    ) -> bool:
        """Mark the row done; False (nothing written) when the lease was lost. Pass ``conn`` to
        complete inside the transaction of the work's own effects, and roll back on False.
        ``extra_set`` adds assignments whose parameters start at ``$3``."""
        extra = f", {extra_set}" if extra_set else ""
        async with _connection(self._db, conn) as c:
            done = await c.fetchval(
                f"""UPDATE {self.table.name}
                    SET {self.table.done_column} = now(), attempts = attempts + 1,
                        last_error = NULL{extra}
                    WHERE {self._mine} RETURNING 1""",
                claim.id,
                claim.token,
                *args,
            )
        return done is not None

    async def complete_many(
        self, done: Sequence[tuple[Claim, str]], *, extra_set: str = ""
    ) -> set[int]:
        """Mark many rows done in one statement, each with a text value that ``extra_set`` may
        assign from ``r.value`` (e.g. ``response = r.value::jsonb``); the ids recorded (the
        others' leases were lost: nothing written for them)."""
        if not done:
            return set()
        extra = f", {extra_set}" if extra_set else ""
        async with self._db.acquire() as conn:
            rows = await conn.fetch(
                f"""UPDATE {self.table.name} q
                    SET {self.table.done_column} = now(), attempts = q.attempts + 1,
                        last_error = NULL{extra}
                    FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS r(id, token, value)
                    WHERE q.id = r.id AND q.lease_token = r.token
                      AND q.{self.table.done_column} IS NULL
                    RETURNING q.id""",
                [c.id for c, _ in done],
                [c.token for c, _ in done],
                [value for _, value in done],
            )
        return {r["id"] for r in rows}

    async def reschedule(
        self,
        claim: Claim,
        retry_in: float,
        *,
        conn: asyncpg.Connection | None = None,
        extra_set: str = "",
        args: Sequence[object] = (),
    ) -> bool:
        """Record progress on a row that is not done yet and make it due again in ``retry_in``;
        False (nothing written) when the lease was lost. ``extra_set`` as for ``complete``,
        its parameters starting at ``$4``."""
        extra = f", {extra_set}" if extra_set else ""
        async with _connection(self._db, conn) as c:
            done = await c.fetchval(
                f"""UPDATE {self.table.name}
                    SET last_error = NULL, lease_token = NULL,
                        next_attempt_at = now() + make_interval(secs => $3){extra}
                    WHERE {self._mine} RETURNING 1""",
                claim.id,
                claim.token,
                retry_in,
                *args,
            )
        return done is not None

    async def fail(self, claim: Claim, error: str, retry_in: float) -> bool:
        """Count a failed attempt, keep its error, make the row due again in ``retry_in``."""
        async with self._db.acquire() as conn:
            done = await conn.fetchval(
                f"""UPDATE {self.table.name}
                    SET attempts = attempts + 1, last_error = $3, lease_token = NULL,
                        next_attempt_at = now() + make_interval(secs => $4)
                    WHERE {self._mine} RETURNING 1""",
                claim.id,
                claim.token,
                error[:1000],
                retry_in,
            )
        return done is not None

    async def defer(self, claims: Sequence[Claim], retry_in: float) -> None:
        """Hand back claimed rows that were not worked: due again in ``retry_in``, no attempt
        counted."""
        if not claims:
            return
        async with self._db.acquire() as conn:
            await conn.execute(
                self._defer_sql, [c.id for c in claims], [c.token for c in claims], retry_in
            )

    async def park(
        self, claim: Claim, error: str, *, conn: asyncpg.Connection | None = None
    ) -> bool:
        """Stop retrying the row for good (kept, with its error) until an operator un-parks it.
        Pass ``conn`` to park in the transaction that raises the alert about it."""
        async with _connection(self._db, conn) as c:
            done = await c.fetchval(
                f"""UPDATE {self.table.name}
                    SET attempts = attempts + 1, last_error = $3, lease_token = NULL,
                        parked_at = now(), next_attempt_at = 'infinity'
                    WHERE {self._mine} RETURNING 1""",
                claim.id,
                claim.token,
                error[:1000],
            )
        return done is not None


async def unpark(conn: asyncpg.Connection, table: QueueTable, row_id: int) -> bool:
    """Make a parked row due now, its error cleared; False when it is not parked."""
    done = await conn.fetchval(
        f"""UPDATE {table.name}
            SET parked_at = NULL, next_attempt_at = now(), last_error = NULL
            WHERE id = $1 AND {table.done_column} IS NULL AND parked_at IS NOT NULL
            RETURNING 1""",
        row_id,
    )
    return done is not None


@contextlib.asynccontextmanager
async def _connection(
    db: asyncpg.Pool, conn: asyncpg.Connection | None
) -> AsyncIterator[asyncpg.Connection]:
    if conn is not None:
        yield conn
        return
    async with db.acquire() as acquired:
        yield acquired
