"""The ledger outbox for ops: the backlog, parked rows with the ledger's answer, and resend."""

from __future__ import annotations

from aiohttp import web

from chaingate.api.alerts import note_of
from chaingate.api.auth import require
from chaingate.api.common import ctx_of, id_of, json_response, optional_body, parse_limit
from chaingate.ops import actions
from chaingate.store import outbox


async def get_outbox(request: web.Request) -> web.Response:
    require(request, "viewer", "ops_maker", "ops_approver")
    async with ctx_of(request).db.acquire() as conn:
        backlog = await outbox.backlog(conn)
        parked = await outbox.list_parked(conn, parse_limit(request.query.get("limit")))
    return json_response({"backlog": backlog, "parked": parked})


async def resend(request: web.Request) -> web.Response:
    principal = require(request)
    outbox_id = id_of(request, "outbox_id", "outbox id")
    body = await optional_body(request)
    async with ctx_of(request).db.acquire() as conn:
        key = await actions.resend_outbox(conn, principal, outbox_id, note_of(body))
    return json_response({"id": outbox_id, "idempotency_key": key, "due": True})


def routes(app: web.Application) -> None:
    app.router.add_get("/v1/outbox", get_outbox)
    app.router.add_post("/v1/outbox/{outbox_id}/resend", resend)
