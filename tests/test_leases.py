"""Fencing leases (store/leases.py) on real PostgreSQL: one holder at a time, takeover only after
expiry, epochs that only rise, a stale epoch refused inside a write transaction, and a takeover
that waits for a checked transaction in flight."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from chaingate.errors import FencedOut, StoreError
from chaingate.store import leases
from harness import until

NAME = "watcher:test-net"


async def _expired(db: asyncpg.Pool, name: str = NAME) -> bool:
    return await leases.current(db, name) is None


async def test_one_holder_at_a_time_and_renewal_keeps_the_epoch(db: asyncpg.Pool) -> None:
    a = await leases.acquire(db, NAME, "a", 30)
    assert a is not None and (a.holder, a.epoch) == ("a", 1)
    assert await leases.acquire(db, NAME, "b", 30) is None
    again = await leases.acquire(db, NAME, "a", 60)  # the holder re-acquiring is a renewal
    assert again is not None and again.epoch == 1 and again.expires_at > a.expires_at
    renewed = await leases.renew(db, again, 30)
    assert renewed is not None and renewed.epoch == 1
    assert await leases.current(db, NAME) == renewed
    assert await leases.acquire(db, "watcher:other-net", "b", 30) is not None  # per name


async def test_expiry_hands_the_lease_over_with_a_higher_epoch(db: asyncpg.Pool) -> None:
    a = await leases.acquire(db, NAME, "a", 0.2)
    assert a is not None
    await until(lambda: _expired(db), 5)
    b = await leases.acquire(db, NAME, "b", 30)
    assert b is not None and b.epoch == a.epoch + 1
    assert await leases.renew(db, a, 30) is None  # lost for good
    assert await leases.acquire(db, NAME, "a", 30) is None
    assert await leases.current(db, NAME) == b


async def test_expired_lease_is_not_renewed_even_by_its_holder(db: asyncpg.Pool) -> None:
    a = await leases.acquire(db, NAME, "a", 0.2)
    assert a is not None
    await until(lambda: _expired(db), 5)
    assert await leases.renew(db, a, 30) is None
    back = await leases.acquire(db, NAME, "a", 30)
    assert back is not None and back.epoch == a.epoch + 1  # a new term, not the old one


async def test_release_keeps_epochs_rising(db: asyncpg.Pool) -> None:
    a = await leases.acquire(db, NAME, "a", 30)
    assert a is not None
    await leases.release(db, a)
    assert await leases.current(db, NAME) is None
    b = await leases.acquire(db, NAME, "b", 30)
    assert b is not None and b.epoch == 2
    await leases.release(db, a)  # a stale release frees nothing
    assert await leases.current(db, NAME) == b


async def test_check_refuses_a_stale_epoch_inside_the_transaction(db: asyncpg.Pool) -> None:
    await db.execute("CREATE TABLE fenced_writes (epoch bigint)")
    a = await leases.acquire(db, NAME, "a", 30)
    assert a is not None
    await leases.release(db, a)
    b = await leases.acquire(db, NAME, "b", 30)
    assert b is not None
    async with db.acquire() as conn:
        with pytest.raises(FencedOut):
            async with conn.transaction():
                await conn.execute("INSERT INTO fenced_writes VALUES ($1)", a.epoch)
                await leases.check(conn, a)
        async with conn.transaction():
            await leases.check(conn, b)
            await conn.execute("INSERT INTO fenced_writes VALUES ($1)", b.epoch)
        with pytest.raises(StoreError):  # outside a transaction a check protects nothing
            await leases.check(conn, b)
    assert [r["epoch"] for r in await db.fetch("SELECT epoch FROM fenced_writes")] == [b.epoch]


async def test_check_refuses_an_expired_lease_nobody_took(db: asyncpg.Pool) -> None:
    a = await leases.acquire(db, NAME, "a", 0.2)
    assert a is not None
    await until(lambda: _expired(db), 5)
    async with db.acquire() as conn, conn.transaction():
        with pytest.raises(FencedOut):
            await leases.check(conn, a)


async def test_takeover_waits_for_a_checked_transaction_in_flight(db: asyncpg.Pool) -> None:
    """The old leader's checked write commits before the new epoch begins, even when its lease
    expires while that transaction is open: no write of epoch N lands after epoch N+1 starts."""
    await db.execute("CREATE TABLE fenced_writes (epoch bigint, at timestamptz)")
    a = await leases.acquire(db, NAME, "a", 0.5)
    assert a is not None
    async with db.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await leases.check(conn, a)
        await until(lambda: _expired(db), 5)  # expired while the write is in flight
        takeover = asyncio.create_task(leases.acquire(db, NAME, "b", 30))
        await until(lambda: _waits_on_lock(db), 10)
        assert not takeover.done()
        await conn.execute("INSERT INTO fenced_writes VALUES ($1, clock_timestamp())", a.epoch)
        await tx.commit()
    b = await takeover
    assert b is not None and b.epoch == a.epoch + 1
    acquired_at = await db.fetchval("SELECT acquired_at FROM leases WHERE name = $1", NAME)
    written_at = await db.fetchval("SELECT at FROM fenced_writes")
    assert written_at < acquired_at


async def _waits_on_lock(db: asyncpg.Pool) -> bool:
    waiting = await db.fetchval(
        """SELECT count(*) FROM pg_stat_activity
           WHERE datname = current_database() AND wait_event_type = 'Lock'
             AND query LIKE '%INSERT INTO leases%'"""
    )
    return bool(waiting)
