"""GET /v1/networks (service, viewer): per network the head, the cursor, the lag, each
endpoint's health and chain check, the leader and its epoch, and whether the gateway has
caught up. Everything comes from the database (the API process may run no watchers): the
watchers' processes publish head and endpoint health (watcher/status.py), the cursor is the
watcher's own, the leader is the ``watcher:<network>`` lease."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web

from chaingate.api.auth import require
from chaingate.api.common import ctx_of, json_response
from chaingate.domain import Network
from chaingate.store import leases, netstatus
from chaingate.store.progress import catch_up_views

# Status older than this means no process is publishing for the network (watchers down).
STALE_AFTER_SECONDS = 30.0
# Blocks the cursor may trail the head and still count as caught up: a block can arrive
# between the watcher's last step and the status write.
CAUGHT_UP_LAG = 2


@dataclass(frozen=True, slots=True)
class Progress:
    head: int | None
    cursor: int | None
    status_age: float | None


def lag_blocks(p: Progress) -> int | None:
    if p.head is None or p.cursor is None:
        return None
    return max(0, p.head - p.cursor)


def caught_up(p: Progress) -> bool:
    """True when a publisher is alive and the cursor is within ``CAUGHT_UP_LAG`` of its head."""
    lag = lag_blocks(p)
    fresh = p.status_age is not None and p.status_age <= STALE_AFTER_SECONDS
    return fresh and lag is not None and lag <= CAUGHT_UP_LAG


def _leader(lease: leases.Lease | None) -> dict[str, Any] | None:
    if lease is None:
        return None
    return {"instance": lease.holder, "epoch": lease.epoch, "expires_at": lease.expires_at}


def _network_view(
    network: Network, row: dict[str, Any], leader: dict[str, Any] | None
) -> dict[str, Any]:
    progress = Progress(row["head"], row["cursor"], row["status_age"])
    lag = lag_blocks(progress)
    return {
        "network": network.name,
        "kind": network.kind.value,
        "watch_only": network.watch_only,
        "head": row["head"],
        "cursor": row["cursor"],
        "cursor_updated_at": row["cursor_at"],
        "lag_blocks": lag,
        # Estimated from the registry's block time: blocks carry no clock we store.
        "lag_seconds": None if lag is None else round(lag * network.block_time, 1),
        "caught_up": caught_up(progress),
        "endpoints": row["endpoints"],
        "status_instance": row["instance"],
        "status_updated_at": row["status_at"],
        "status_age_seconds": None if row["status_age"] is None else round(row["status_age"], 1),
        "leader": leader,
    }


async def overview(conn: asyncpg.Connection, networks: Mapping[str, Network]) -> dict[str, Any]:
    """Every configured network as GET /v1/networks shows it (the ops console shows the same)."""
    names = sorted(networks)
    rows = await netstatus.overview(conn, names)
    leaders = {n: _leader(await leases.current(conn, f"watcher:{n}")) for n in names}
    views = [_network_view(networks[r["network"]], r, leaders[r["network"]]) for r in rows]
    # A watcher far behind: blocks done and to go, blocks/s, time left (watcher/progress.py).
    catch_up = await catch_up_views(conn)
    for view in views:
        view["catch_up"] = catch_up.get(view["network"])
    return {"caught_up": bool(views) and all(v["caught_up"] for v in views), "networks": views}


async def get_networks(request: web.Request) -> web.Response:
    require(request, "service", "viewer", "ops_maker", "ops_approver")
    ctx = ctx_of(request)
    async with ctx.db.acquire() as conn:
        return json_response(await overview(conn, ctx.networks))


def routes(app: web.Application) -> None:
    app.router.add_get("/v1/networks", get_networks)
