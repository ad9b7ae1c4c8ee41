"""The one leased queue (store/queue.py) on a real PostgreSQL table that follows its convention:
two workers never hold one row, a lease that ran out lets another worker claim the row, and the
slow first worker's completion is then refused; renewal keeps a long job leased."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from chaingate.store.queue import LeasedQueue, QueueTable, unpark

JOBS = QueueTable(name="test_jobs", returning="q.id, q.attempts, q.body")


@pytest.fixture
async def jobs(db: asyncpg.Pool) -> asyncpg.Pool:
    await db.execute(
        """CREATE TABLE test_jobs (
               id bigserial PRIMARY KEY,
               body text NOT NULL,
               attempts integer NOT NULL DEFAULT 0,
               next_attempt_at timestamptz NOT NULL DEFAULT now(),
               leased_by text,
               lease_token bigint,
               done_at timestamptz,
               parked_at timestamptz,
               last_error text)"""
    )
    await db.executemany("INSERT INTO test_jobs (body) VALUES ($1)", [(f"j{i}",) for i in range(5)])
    return db


def worker(db: asyncpg.Pool, name: str, lease: float = 30) -> LeasedQueue:
    return LeasedQueue(db, JOBS, holder=name, lease_seconds=lease)


async def test_two_workers_split_the_rows_and_never_share_one(jobs: asyncpg.Pool) -> None:
    a, b = worker(jobs, "a"), worker(jobs, "b")
    first, second = await asyncio.gather(a.claim(3), b.claim(3))
    ids_a, ids_b = {c.id for c in first}, {c.id for c in second}
    assert not ids_a & ids_b
    assert ids_a | ids_b == {1, 2, 3, 4, 5}
    assert await a.claim(10) == []  # everything is leased
    holders = dict(await jobs.fetch("SELECT id, leased_by FROM test_jobs"))
    assert {holders[i] for i in ids_a} == {"a"} and {holders[i] for i in ids_b} == {"b"}


async def test_slow_worker_whose_lease_ran_out_cannot_complete_the_reclaimed_row(
    jobs: asyncpg.Pool,
) -> None:
    slow, fast = worker(jobs, "slow", lease=0.2), worker(jobs, "fast")
    [mine] = await slow.claim(1)
    await asyncio.sleep(0.3)  # the slow worker's send outlives its lease
    [theirs] = [c for c in await fast.claim(10) if c.id == mine.id]
    assert theirs.token != mine.token
    # The slow worker finishes late: every write of it is refused, nothing is changed.
    assert await slow.complete(mine) is False
    assert await slow.fail(mine, "late", 1) is False
    assert await slow.park(mine, "late") is False
    assert await slow.renew([mine]) == set()
    row = await jobs.fetchrow("SELECT * FROM test_jobs WHERE id = $1", mine.id)
    assert row["done_at"] is None and row["leased_by"] == "fast" and row["attempts"] == 0
    assert await fast.complete(theirs) is True
    assert await fast.complete(theirs) is False  # done once
    assert await jobs.fetchval("SELECT attempts FROM test_jobs WHERE id = $1", mine.id) == 1


async def test_completing_many_at_once_records_only_the_rows_still_leased(
    jobs: asyncpg.Pool,
) -> None:
    slow, fast = worker(jobs, "slow", lease=0.2), worker(jobs, "fast")
    claims = await slow.claim(3)
    await asyncio.sleep(0.3)  # the leases run out; another worker takes one row
    [theirs] = await fast.claim(1)
    await jobs.execute("ALTER TABLE test_jobs ADD COLUMN result text")
    done = [(c, f"r{c.id}") for c in claims]
    assert await slow.complete_many(done, extra_set="result = r.value") == {
        c.id for c in claims if c.id != theirs.id
    }
    assert await slow.complete_many(done) == set()  # done once
    rows = {r["id"]: r for r in await jobs.fetch("SELECT * FROM test_jobs")}
    for c in claims:
        row = rows[c.id]
        if c.id == theirs.id:
            assert row["done_at"] is None and row["result"] is None and row["attempts"] == 0
        else:
            assert row["done_at"] is not None and row["result"] == f"r{c.id}"
            assert row["attempts"] == 1


async def test_keep_alive_renews_a_lease_while_long_work_runs(jobs: asyncpg.Pool) -> None:
    slow, other = worker(jobs, "slow", lease=0.3), worker(jobs, "other")
    claims = await slow.claim(5)
    async with slow.keep_alive(claims):
        await asyncio.sleep(0.8)  # well past one lease
        assert await other.claim(5) == []  # still ours
    assert all([await slow.complete(c) for c in claims])


async def test_fail_backs_off_defer_hands_back_and_park_stops_retries(jobs: asyncpg.Pool) -> None:
    q = worker(jobs, "w")
    one, two, three, *_ = await q.claim(5)
    assert await q.fail(one, "receiver down", 60)
    await q.defer([two], 0)
    assert await q.park(three, "refused for good")
    due = {c.id for c in await q.claim(5)}
    assert due == {two.id}  # failed waits its backoff, parked waits for ever, deferred is due
    rows = {r["id"]: r for r in await jobs.fetch("SELECT * FROM test_jobs")}
    assert rows[one.id]["attempts"] == 1 and rows[one.id]["last_error"] == "receiver down"
    assert rows[two.id]["attempts"] == 0  # a defer counts no attempt
    assert rows[three.id]["parked_at"] is not None
    async with jobs.acquire() as conn:
        assert await unpark(conn, JOBS, three.id)
        assert not await unpark(conn, JOBS, three.id)
    assert [c.id for c in await q.claim(5)] == [three.id]


async def test_completion_inside_the_works_transaction_rolls_back_when_fenced(
    jobs: asyncpg.Pool,
) -> None:
    slow, fast = worker(jobs, "slow", lease=0.1), worker(jobs, "fast")
    [mine] = await slow.claim(1)
    await asyncio.sleep(0.2)
    await fast.claim(1)
    async with jobs.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("UPDATE test_jobs SET body = 'effect' WHERE id = $1", mine.id)
        assert await slow.complete(mine, conn=conn) is False
        await tx.rollback()  # what a worker does on False: its effects go too
    assert await jobs.fetchval("SELECT body FROM test_jobs WHERE id = $1", mine.id) == "j0"


async def test_a_table_ordered_by_due_time_reaches_a_row_behind_a_claim_full_of_older_ids(
    jobs: asyncpg.Pool,
) -> None:
    # The broadcaster's case: rows 1-4 are tracked and come due again every pass, row 5 is
    # newly due. Ordered by id, a claim of 4 would take rows 1-4 on every pass and never row 5.
    await jobs.execute("UPDATE test_jobs SET next_attempt_at = now() - interval '1 second'")
    await jobs.execute(
        "UPDATE test_jobs SET next_attempt_at = now() - interval '1 minute' WHERE id = 5"
    )
    by_id = LeasedQueue(jobs, JOBS, holder="by-id", lease_seconds=30)
    assert 5 not in {c.id for c in await by_id.claim(4)}
    await jobs.execute(
        "UPDATE test_jobs SET lease_token = NULL, next_attempt_at = now() - interval '1 second'"
    )
    await jobs.execute(
        "UPDATE test_jobs SET next_attempt_at = now() - interval '1 minute' WHERE id = 5"
    )
    by_due = QueueTable(name="test_jobs", returning=JOBS.returning, order="q.next_attempt_at, q.id")
    fair = LeasedQueue(jobs, by_due, holder="by-due", lease_seconds=30)
    assert 5 in {c.id for c in await fair.claim(4)}
