"""What the signer refused (parked signer jobs), for ops: read here, decided through
``POST /v1/batches/{id}/rejection`` (or by un-parking once the cause is fixed)."""

from __future__ import annotations

from aiohttp import web

from chaingate.api.auth import require
from chaingate.api.common import ctx_of, json_response, parse_limit
from chaingate.withdrawals.refused import refused_jobs


async def get_refused(request: web.Request) -> web.Response:
    require(request, "viewer", "ops_maker", "ops_approver")
    async with ctx_of(request).db.acquire() as conn:
        jobs = await refused_jobs(conn, parse_limit(request.query.get("limit")))
    return json_response({"jobs": jobs})


def routes(app: web.Application) -> None:
    app.router.add_get("/v1/signer/refused", get_refused)
