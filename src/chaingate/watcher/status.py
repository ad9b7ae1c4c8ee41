"""Publish a network's head and endpoint health to the database for GET /v1/networks.

Runs beside each watcher in a process with the ``watchers`` role; the API may run elsewhere.
It reads the pool's health as the head prober left it (no extra requests to the endpoints).
A failed write is logged and tried again next round: status is never worth stopping for.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from contextlib import suppress
from typing import Any, Protocol

import asyncpg
import structlog

from chaingate.store import netstatus

log = structlog.get_logger(__name__)


class HealthSource(Protocol):
    """What the endpoint pool offers: one frozen health record per endpoint."""

    def health_snapshot(self) -> Sequence[Any]: ...


def best_head(endpoints: Sequence[dict[str, Any]]) -> int | None:
    heads = [e["head"] for e in endpoints if e.get("healthy") and e.get("head") is not None]
    return max(heads) if heads else None


def health_records(pool: HealthSource) -> list[dict[str, Any]]:
    """Each endpoint's health record as JSON-ready fields (names, never URLs)."""
    return [dataclasses.asdict(h) for h in pool.health_snapshot()]


async def publish_status(
    db: asyncpg.Pool,
    network: str,
    pool: HealthSource,
    instance: str,
    stop: asyncio.Event,
    interval: float = 5.0,
) -> None:
    while not stop.is_set():
        endpoints = health_records(pool)
        try:
            await netstatus.publish(db, network, instance, best_head(endpoints), endpoints)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("network_status_not_published", network=network, error=type(exc).__name__)
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
