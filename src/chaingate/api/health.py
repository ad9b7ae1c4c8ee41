"""Liveness, readiness and Prometheus metrics (no authentication)."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from chaingate.api.common import ctx_of, json_response


async def healthz(_: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    checks: dict[str, Any] = {}
    ready = True
    try:
        async with ctx.db.acquire() as conn:
            await conn.fetchval("SELECT 1")
        checks["database"] = "ok"
    except (OSError, asyncpg.PostgresError) as exc:
        ready = False
        checks["database"] = f"unavailable: {type(exc).__name__}"
    networks: dict[str, bool] = {}
    for name, probe in ctx.readiness.items():
        ok, details = probe()
        ready = ready and ok
        checks[name] = details
        # "<part>:<network>" (endpoints, watcher, heads, reconcile): a network is ready when
        # every part of it is, so a client sees which networks it can rely on right now.
        _, _, network = name.partition(":")
        if network:
            networks[network] = networks.get(network, True) and ok
    body = {"ready": ready, "networks": networks, "checks": checks}
    return json_response(body, 200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(ctx_of(request).registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
