"""Withdrawals (SPEC section 9): requests from the ledger (role `service`), read by the service,
viewers and ops."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from chaingate.api.auth import require
from chaingate.api.common import (
    ApiContext,
    ctx_of,
    cursor_id,
    cursor_of,
    json_response,
    parse_int64,
    parse_limit,
    read_body,
    user_id_of,
)
from chaingate.withdrawals import intake, views
from chaingate.withdrawals.rules import WithdrawalRules

READERS = ("service", "viewer", "ops_maker", "ops_approver")


def rules_of(ctx: ApiContext) -> WithdrawalRules:
    return WithdrawalRules(
        networks=ctx.networks, codecs=ctx.codecs, seal_key=ctx.seal_key, quorum=ctx.approval_quorum
    )


def path_id(request: web.Request, name: str, what: str) -> int:
    """A withdrawal or batch id from the path: 422 unless plain ASCII digits within int64."""
    return parse_int64(request.match_info[name], f"{what} id", minimum=1)


def page_response(key: str, page: dict[str, Any]) -> web.Response:
    """A page as the list endpoints answer it: ``next`` is passed back as ``after``."""
    last_id = page["last_id"]
    return json_response({key: page[key], "next": None if last_id is None else cursor_of(last_id)})


async def post_withdrawal(request: web.Request) -> web.Response:
    principal = require(request, "service")
    ctx = ctx_of(request)
    body = await read_body(request)
    async with ctx.db.acquire() as conn:
        view, created = await intake.submit(conn, rules_of(ctx), principal.name, body)
    return json_response(view, 201 if created else 200)


async def get_withdrawal(request: web.Request) -> web.Response:
    require(request, *READERS)
    withdrawal_id = path_id(request, "withdrawal_id", "withdrawal")
    async with ctx_of(request).db.acquire() as conn:
        view = await views.get_withdrawal(conn, withdrawal_id)
    return json_response(view)


async def get_withdrawals(request: web.Request) -> web.Response:
    require(request, *READERS)
    q = request.query
    async with ctx_of(request).db.acquire() as conn:
        page = await views.list_withdrawals(
            conn,
            user_id=user_id_of(q["user_id"]) if q.get("user_id") else None,
            network=q.get("network") or None,
            asset=q.get("asset") or None,
            status=q.get("status") or None,
            before_id=cursor_id(q["after"]) if q.get("after") else None,
            limit=parse_limit(q.get("limit")),
        )
    return page_response("withdrawals", page)


def routes(app: web.Application) -> None:
    app.router.add_post("/v1/withdrawals", post_withdrawal)
    app.router.add_get("/v1/withdrawals", get_withdrawals)
    app.router.add_get("/v1/withdrawals/{withdrawal_id}", get_withdrawal)
