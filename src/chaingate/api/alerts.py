"""Alerts: list (viewer and ops), acknowledge and re-push to the webhook (ops)."""

from __future__ import annotations

from aiohttp import web

from chaingate.api.auth import require
from chaingate.api.common import (
    ctx_of,
    id_of,
    json_response,
    optional_body,
    parse_limit,
)
from chaingate.errors import ValidationError
from chaingate.ops import actions
from chaingate.store import alerts

SEVERITIES = ("info", "warning", "critical")


async def get_alerts(request: web.Request) -> web.Response:
    require(request, "viewer", "ops_maker", "ops_approver")
    q = request.query
    severity = q.get("severity") or None
    if severity is not None and severity not in SEVERITIES:
        raise ValidationError(f"'severity' must be one of {', '.join(SEVERITIES)}")
    limit = parse_limit(q.get("limit"))
    async with ctx_of(request).db.acquire() as conn:
        if q.get("undelivered", "") in ("1", "true"):
            rows = await alerts.undelivered_alerts(conn, limit=limit)
        else:
            rows = await alerts.list_alerts(
                conn,
                open_only=q.get("open", "") in ("1", "true"),
                severity=severity,
                kind=q.get("kind") or None,
                limit=limit,
            )
    return json_response({"alerts": rows})


async def ack_alert(request: web.Request) -> web.Response:
    principal = require(request)
    alert_id = id_of(request, "alert_id", "alert id")
    body = await optional_body(request)
    async with ctx_of(request).db.acquire() as conn:
        done = await actions.acknowledge_alert(conn, principal, alert_id, note_of(body))
    reply: dict[str, object] = {"id": alert_id, "acknowledged": True}
    if done.already:
        reply["already"] = True
    return json_response(reply)


async def redeliver(request: web.Request) -> web.Response:
    """Body {"ids": [..]} or {"all": true}: make held alerts due for the webhook now."""
    principal = require(request)
    body = await optional_body(request)
    ids = body.get("ids")
    if body.get("all") is True and ids is None:
        chosen: list[int] | None = None
    elif (
        isinstance(ids, list)
        and ids
        and all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids)
    ):
        chosen = ids
    else:
        raise ValidationError("give 'ids' (a list of alert ids) or 'all': true")
    async with ctx_of(request).db.acquire() as conn:
        count = await actions.redeliver_alerts(conn, principal, chosen)
    return json_response({"due": count})


def note_of(body: dict[str, object]) -> str | None:
    note = body.get("note")
    if note is not None and not isinstance(note, str):
        raise ValidationError("'note' must be a string")
    return note


def routes(app: web.Application) -> None:
    app.router.add_get("/v1/alerts", get_alerts)
    app.router.add_post("/v1/alerts/redeliver", redeliver)
    app.router.add_post("/v1/alerts/{alert_id}/ack", ack_alert)
