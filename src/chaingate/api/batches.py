"""Withdrawal batches and maker-checker (SPEC section 9): makers make batches, approvers approve
or reject them, viewers and ops read them."""

from __future__ import annotations

from aiohttp import web

from chaingate.api.auth import require
from chaingate.api.common import ctx_of, cursor_id, json_response, parse_limit, read_body
from chaingate.api.withdrawals import page_response, path_id, rules_of
from chaingate.ops import actions
from chaingate.withdrawals import views

READERS = ("viewer", "ops_maker", "ops_approver")


async def post_batch(request: web.Request) -> web.Response:
    principal = require(request)
    ctx = ctx_of(request)
    body = await read_body(request, "network", "asset")
    async with ctx.db.acquire() as conn:
        view = await actions.create_batch(
            conn, rules_of(ctx), principal, body["network"], body["asset"]
        )
    return json_response(view, 201)


async def get_batches(request: web.Request) -> web.Response:
    require(request, *READERS)
    ctx = ctx_of(request)
    q = request.query
    async with ctx.db.acquire() as conn:
        page = await views.list_batches(
            conn,
            ctx.approval_quorum,
            network=q.get("network") or None,
            asset=q.get("asset") or None,
            status=q.get("status") or None,
            before_id=cursor_id(q["after"]) if q.get("after") else None,
            limit=parse_limit(q.get("limit")),
        )
    return page_response("batches", page)


async def get_batch(request: web.Request) -> web.Response:
    require(request, *READERS)
    ctx = ctx_of(request)
    batch_id = path_id(request, "batch_id", "batch")
    async with ctx.db.acquire() as conn:
        view = await views.get_batch(conn, batch_id, ctx.approval_quorum)
    return json_response(view)


async def post_approval(request: web.Request) -> web.Response:
    principal = require(request)
    ctx = ctx_of(request)
    batch_id = path_id(request, "batch_id", "batch")
    body = await read_body(request, "content_hash")
    async with ctx.db.acquire() as conn:
        view = await actions.approve_batch(
            conn, rules_of(ctx), principal, batch_id, body["content_hash"]
        )
    return json_response(view, 201)


async def post_rejection(request: web.Request) -> web.Response:
    principal = require(request)
    ctx = ctx_of(request)
    batch_id = path_id(request, "batch_id", "batch")
    body = await read_body(request, "reason")
    async with ctx.db.acquire() as conn:
        view = await actions.reject_batch(
            conn, rules_of(ctx), principal, batch_id, body["reason"], body.get("release")
        )
    return json_response(view)


def routes(app: web.Application) -> None:
    app.router.add_post("/v1/batches", post_batch)
    app.router.add_get("/v1/batches", get_batches)
    app.router.add_get("/v1/batches/{batch_id}", get_batch)
    app.router.add_post("/v1/batches/{batch_id}/approvals", post_approval)
    app.router.add_post("/v1/batches/{batch_id}/rejection", post_rejection)
