"""The service API (SPEC section 9): one module per area, each adding its routes here."""

from __future__ import annotations

from aiohttp import web

from chaingate.api import (
    alerts,
    audit,
    batches,
    deposits,
    health,
    networks,
    outbox,
    signer_jobs,
    withdrawals,
)
from chaingate.api.auth import TOKENS_KEY, TokenTable
from chaingate.api.common import CTX_KEY, ApiContext, errors_middleware
from chaingate.console.app import console_app, disabled_app


def build_app(ctx: ApiContext) -> web.Application:
    app = web.Application(middlewares=[errors_middleware], client_max_size=64 * 1024)
    app[CTX_KEY] = ctx
    app[TOKENS_KEY] = TokenTable(ctx.tokens)
    for area in (
        health,
        deposits,
        alerts,
        networks,
        withdrawals,
        batches,
        outbox,
        audit,
        signer_jobs,
    ):
        area.routes(app)
    key = ctx.console_session_key
    app.add_subapp("/ops", console_app(key) if key else disabled_app())
    return app
