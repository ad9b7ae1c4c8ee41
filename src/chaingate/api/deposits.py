"""Deposit addresses and deposits (role `service`; `viewer` may read)."""

from __future__ import annotations

import structlog
from aiohttp import web

from chaingate.api.auth import ApiError, require
from chaingate.api.common import (
    ctx_of,
    cursor_id,
    cursor_of,
    json_response,
    network_of,
    parse_limit,
    read_body,
    txid_of,
    user_id_of,
)
from chaingate.api.issuance import ensure_issuable
from chaingate.domain import DepositStatus
from chaingate.errors import (
    AddressIssuanceError,
    ChainDataError,
    ConfigError,
    ProviderError,
    ValidationError,
)
from chaingate.store import addresses, deposits

log = structlog.get_logger(__name__)


async def post_deposit_address(request: web.Request) -> web.Response:
    principal = require(request, "service")
    ctx = ctx_of(request)
    body = await read_body(request, "user_id", "network")
    user_id = user_id_of(body["user_id"])
    network = network_of(ctx, body["network"])
    if network.watch_only:
        raise ValidationError(
            f"{network.name} is watch-only: no deposit addresses are issued there"
        )
    codec = ctx.codecs[network.name]
    try:
        await ensure_issuable(
            ctx.db,
            network,
            codec,
            start_index=ctx.address_start.get(network.name, 0),
            history=ctx.address_history,
        )
        row, created = await addresses.issue_address(ctx.db, network.name, user_id, codec.derive)
    except ConfigError as exc:
        raise ApiError(503, "not_configured", f"{network.name}: {exc}") from None
    except AddressIssuanceError as exc:
        log.error("deposit_address_refused", network=network.name, code=exc.code)
        raise ApiError(409, exc.code, str(exc)) from None
    except (ProviderError, ChainDataError) as exc:
        raise ApiError(
            503,
            "address_history_unavailable",
            f"{network.name}: could not check the xpub's first addresses on chain before the "
            f"first issue ({type(exc).__name__}); try again when the endpoints answer",
        ) from None
    if created:
        log.info(
            "deposit_address_issued",
            network=network.name,
            user_id=user_id,
            principal=principal.name,
        )
    return json_response(
        {"user_id": row.user_id, "network": row.network, "address": row.address},
        201 if created else 200,
    )


async def get_deposits(request: web.Request) -> web.Response:
    """Newest first; ``next`` is the cursor of the following page (``after=``), null at the end."""
    require(request, "service", "viewer")
    ctx = ctx_of(request)
    q = request.query
    status = q.get("status") or None
    if status is not None and status not in {s.value for s in DepositStatus}:
        raise ValidationError(f"unknown status {status!r}")
    where = deposits.DepositFilter(
        user_id=user_id_of(q["user_id"]) if q.get("user_id") else None,
        network=network_of(ctx, q["network"]).name if q.get("network") else None,
        status=status,
        txid=txid_of(q["txid"]) if q.get("txid") else None,
        asset=q.get("asset") or None,
        before_id=cursor_id(q["after"]) if q.get("after") else None,
    )
    limit = parse_limit(q.get("limit"))
    async with ctx.db.acquire() as conn:
        rows = await deposits.list_deposits(conn, where, limit + 1)
    page = rows[:limit]
    more = len(rows) > limit
    return json_response(
        {"deposits": page, "next": cursor_of(int(page[-1]["id"])) if more else None}
    )


def routes(app: web.Application) -> None:
    app.router.add_post("/v1/deposit-addresses", post_deposit_address)
    app.router.add_get("/v1/deposits", get_deposits)
