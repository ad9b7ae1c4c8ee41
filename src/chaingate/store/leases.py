"""Named leases with fencing epochs: who leads a network's watcher, reconciler or allocator.

A lease is a row (name, holder, epoch, expires_at). Taking a free or expired lease raises its
epoch by one; the epoch never falls, so it is a fencing token: every write transaction of a
leader calls ``check`` with the Lease it holds, which locks the row (a takeover waits for that
transaction to end) and refuses the write once another holder or a newer epoch holds the name.
Times are the database's clock (``clock_timestamp()``), never the local one, and nothing here
keeps session state (no advisory locks, no SET), so it works through a transaction-pooling proxy
and on distributed PostgreSQL-compatible databases.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from chaingate.errors import FencedOut, StoreError


@dataclass(frozen=True)
class Lease:
    name: str  # "watcher:<network>", "reconcile:<network>", "allocator:evm:<network>:<address>"
    holder: str  # instance id
    epoch: int  # strictly increasing per name: the fencing token
    expires_at: datetime


def new_holder_id() -> str:
    """An instance id for ``holder``: host and pid for people, a random suffix so that two
    instances (or two watchers in one test process) never share one."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


_COLUMNS = "name, holder, epoch, expires_at"

# The same holder renews (same epoch) while its lease has not expired; anyone takes a free or
# expired lease with the next epoch. ON CONFLICT waits for a transaction that holds the row lock
# (a leader's checked write) and then re-evaluates the WHERE against the committed row.
_ACQUIRE = f"""
INSERT INTO leases AS l (name, holder, epoch, expires_at, acquired_at)
VALUES ($1, $2, 1, clock_timestamp() + $3::float8 * interval '1 second', clock_timestamp())
ON CONFLICT (name) DO UPDATE SET
    epoch = CASE WHEN l.holder = excluded.holder AND l.expires_at > clock_timestamp()
                 THEN l.epoch ELSE l.epoch + 1 END,
    acquired_at = CASE WHEN l.holder = excluded.holder AND l.expires_at > clock_timestamp()
                       THEN l.acquired_at ELSE clock_timestamp() END,
    holder = excluded.holder,
    expires_at = excluded.expires_at
WHERE l.holder = excluded.holder OR l.expires_at <= clock_timestamp()
RETURNING {_COLUMNS}
"""


def _lease(row: asyncpg.Record | None) -> Lease | None:
    if row is None:
        return None
    return Lease(str(row["name"]), str(row["holder"]), int(row["epoch"]), row["expires_at"])


def _check_ttl(ttl: float) -> None:
    if not ttl > 0:
        raise StoreError(f"lease ttl must be positive, got {ttl!r}")


async def acquire(
    db: asyncpg.Pool | asyncpg.Connection, name: str, holder: str, ttl: float
) -> Lease | None:
    """Take ``name`` when free or expired (next epoch), renew it when ``holder`` holds it;
    None while someone else holds it."""
    _check_ttl(ttl)
    return _lease(await db.fetchrow(_ACQUIRE, name, holder, ttl))


async def renew(db: asyncpg.Pool | asyncpg.Connection, lease: Lease, ttl: float) -> Lease | None:
    """Extend a lease still held with the same epoch; None when it was lost (or had expired:
    an expired lease is gone even if nobody took it, and must be acquired anew)."""
    _check_ttl(ttl)
    row = await db.fetchrow(
        f"""UPDATE leases SET expires_at = clock_timestamp() + $4::float8 * interval '1 second'
            WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > clock_timestamp()
            RETURNING {_COLUMNS}""",
        lease.name,
        lease.holder,
        lease.epoch,
        ttl,
    )
    return _lease(row)


async def release(db: asyncpg.Pool | asyncpg.Connection, lease: Lease) -> None:
    """Give the lease up now (a standby takes it without waiting for the expiry). The row stays,
    so the next holder's epoch is still higher than every earlier one."""
    await db.execute(
        """UPDATE leases SET expires_at = clock_timestamp()
           WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > clock_timestamp()""",
        lease.name,
        lease.holder,
        lease.epoch,
    )


async def check(conn: asyncpg.Connection, lease: Lease) -> None:
    """Inside the caller's write transaction: hold the lease row (FOR SHARE, so a takeover or
    renewal waits until this transaction ends) and raise FencedOut unless ``lease`` still holds
    it: same holder, same epoch, not expired by the database clock."""
    if not conn.is_in_transaction():
        raise StoreError(f"leases.check({lease.name}) outside a transaction fences nothing")
    row = await conn.fetchrow(
        """SELECT holder, epoch, expires_at > clock_timestamp() AS live
           FROM leases WHERE name = $1 FOR SHARE""",
        lease.name,
    )
    if row is None or row["holder"] != lease.holder or int(row["epoch"]) != lease.epoch:
        held = "nobody" if row is None else f"{row['holder']} epoch {row['epoch']}"
        raise FencedOut(f"{lease.name}: lease epoch {lease.epoch} is fenced out ({held} holds it)")
    if not row["live"]:
        raise FencedOut(f"{lease.name}: lease epoch {lease.epoch} expired")


async def current(conn: asyncpg.Pool | asyncpg.Connection, name: str) -> Lease | None:
    """The live lease on ``name`` (who leads now), or None when it is free or expired."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM leases WHERE name = $1 AND expires_at > clock_timestamp()",
        name,
    )
    return _lease(row)
