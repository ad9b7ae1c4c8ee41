"""Holding a named lease (store/leases.py) from a long-running role: the network's watcher and
its reconciler. Leadership is what the lease row says, checked in every write transaction; this
object only takes, renews and gives back the row and says so in the logs."""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress

import asyncpg
import structlog

from chaingate.errors import ChaingateError
from chaingate.store import leases
from chaingate.store.leases import Lease

log = structlog.get_logger(__name__)
_DB_ERRORS = (ChaingateError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


class LeaseKeeper:
    def __init__(self, db: asyncpg.Pool, name: str, holder: str, ttl: float) -> None:
        self.db = db
        self.name = name
        self.holder = holder
        self.ttl = ttl
        self.lease: Lease | None = None
        self._fresh_until = 0.0  # local monotonic time until which ``lease`` needs no renewal

    @property
    def retry_interval(self) -> float:
        """How often a standby asks for the lease, and how often a leader renews it."""
        return min(5.0, self.ttl / 3)

    async def hold(self) -> Lease | None:
        """Take the lease, or renew it when already ours; None while another holder has it.
        A lease taken or renewed less than a third of its ttl ago is returned as it is: that
        saves a round trip per step and costs no safety, since every write checks it anyway."""
        before = self.lease
        if before is not None and time.monotonic() < self._fresh_until:
            return before
        started = time.monotonic()
        lease = await leases.acquire(self.db, self.name, self.holder, self.ttl)
        self.lease = lease
        self._fresh_until = started + self.retry_interval
        if lease is not None and (before is None or before.epoch != lease.epoch):
            log.info("lease_acquired", lease=self.name, holder=self.holder, epoch=lease.epoch)
        elif lease is None and before is not None:
            log.warning("lease_lost", lease=self.name, holder=self.holder, epoch=before.epoch)
        return lease

    async def keep(self, stop: asyncio.Event) -> None:
        """Renew while held, for work that outlasts the lease (a long catch-up step). A lost
        lease is only logged here: the next fenced write refuses and the leader steps down."""
        while not stop.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.retry_interval)
            lease = self.lease
            if lease is None or stop.is_set():
                continue
            started = time.monotonic()
            try:
                renewed = await leases.renew(self.db, lease, self.ttl)
            except _DB_ERRORS as exc:
                log.warning("lease_renew_failed", lease=self.name, error=type(exc).__name__)
                continue
            if renewed is None:
                log.warning("lease_lost", lease=self.name, holder=self.holder, epoch=lease.epoch)
            if self.lease is lease:  # a concurrent hold() may have replaced it meanwhile
                self.lease = renewed
                self._fresh_until = 0.0 if renewed is None else started + self.retry_interval

    def forget(self) -> None:
        """A write was fenced out: the lease we hold is gone; ask the database next time."""
        self.lease = None
        self._fresh_until = 0.0

    async def release(self) -> None:
        """Hand the lease over now (on shutdown), so a standby need not wait for the expiry."""
        lease, self.lease = self.lease, None
        self._fresh_until = 0.0
        if lease is not None:
            with suppress(*_DB_ERRORS):
                await leases.release(self.db, lease)
