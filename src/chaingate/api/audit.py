"""The audit log, read-only (viewer and ops): filter by actor, action and time."""

from __future__ import annotations

from aiohttp import web

from chaingate.api.auth import require
from chaingate.api.common import (
    ctx_of,
    cursor_id,
    cursor_of,
    json_response,
    parse_limit,
    parse_time,
)
from chaingate.store import audit


async def get_audit(request: web.Request) -> web.Response:
    require(request, "viewer", "ops_maker", "ops_approver")
    q = request.query
    limit = parse_limit(q.get("limit"))
    async with ctx_of(request).db.acquire() as conn:
        rows = await audit.entries(
            conn,
            actor=q.get("actor") or None,
            action=q.get("action") or None,
            since=parse_time(q.get("since"), "since"),
            until=parse_time(q.get("until"), "until"),
            before_id=cursor_id(q["after"]) if q.get("after") else None,
            limit=limit + 1,
        )
    page = rows[:limit]
    more = len(rows) > limit
    return json_response(
        {"entries": page, "next": cursor_of(int(page[-1]["id"])) if more else None}
    )


def routes(app: web.Application) -> None:
    app.router.add_get("/v1/audit", get_audit)
