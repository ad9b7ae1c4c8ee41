"""Alerts: list (viewer and ops) and acknowledge (ops)."""

from __future__ import annotations

from aiohttp import web

from chaingate.api.auth import require
from chaingate.api.common import ctx_of, json_response, parse_int64, parse_limit
from chaingate.errors import NotFoundError
from chaingate.store import alerts, audit


async def get_alerts(request: web.Request) -> web.Response:
    require(request, "viewer", "ops_maker", "ops_approver")
    open_only = request.query.get("open", "") in ("1", "true")
    async with ctx_of(request).db.acquire() as conn:
        rows = await alerts.list_alerts(
            conn, open_only=open_only, limit=parse_limit(request.query.get("limit"))
        )
    return json_response({"alerts": rows})


async def ack_alert(request: web.Request) -> web.Response:
    principal = require(request, "ops_maker", "ops_approver")
    alert_id = parse_int64(request.match_info["alert_id"], "the alert id", minimum=1)
    async with ctx_of(request).db.acquire() as conn, conn.transaction():
        if not await alerts.acknowledge(conn, alert_id, principal.name):
            if not await alerts.exists(conn, alert_id):
                raise NotFoundError(f"no alert {alert_id}")
            return json_response({"id": alert_id, "acknowledged": True, "already": True})
        await audit.record(conn, principal.name, "alert.ack", f"alert:{alert_id}", {})
    return json_response({"id": alert_id, "acknowledged": True})


def routes(app: web.Application) -> None:
    app.router.add_get("/v1/alerts", get_alerts)
    app.router.add_post("/v1/alerts/{alert_id}/ack", ack_alert)
