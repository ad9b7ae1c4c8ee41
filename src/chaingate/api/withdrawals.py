"""Withdrawals (SPEC section 9): requests from the ledger (role `service`), read by the service,
viewers and ops."""

from __future__ import annotations

from aiohttp import web

from chaingate.api.auth import require
from chaingate.api.common import ApiContext, ctx_of, json_response, parse_limit, read_body
from chaingate.errors import NotFoundError
from chaingate.withdrawals import intake, views
from chaingate.withdrawals.rules import WithdrawalRules

READERS = ("service", "viewer", "ops_maker", "ops_approver")


def rules_of(ctx: ApiContext) -> WithdrawalRules:
    return WithdrawalRules(
        networks=ctx.networks, codecs=ctx.codecs, seal_key=ctx.seal_key, quorum=ctx.approval_quorum
    )


def path_id(request: web.Request, name: str, what: str) -> int:
    raw = request.match_info[name]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise NotFoundError(f"no {what} {raw!r}")
    return int(raw)


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
            user_id=q.get("user_id") or None,
            network=q.get("network") or None,
            asset=q.get("asset") or None,
            status=q.get("status") or None,
            cursor=q.get("cursor") or None,
            limit=parse_limit(q.get("limit")),
        )
    return json_response(page)


def routes(app: web.Application) -> None:
    app.router.add_post("/v1/withdrawals", post_withdrawal)
    app.router.add_get("/v1/withdrawals", get_withdrawals)
    app.router.add_get("/v1/withdrawals/{withdrawal_id}", get_withdrawal)
