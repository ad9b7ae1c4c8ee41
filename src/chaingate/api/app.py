"""The service API (SPEC section 9). Handlers validate at the edge and call the store."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from chaingate.api.auth import TOKENS_KEY, ApiError, Handler, TokenTable, require
from chaingate.chains.base import AddressCodec
from chaingate.domain import DepositStatus, Network
from chaingate.errors import ChaingateError, ConfigError, NotFoundError, ValidationError
from chaingate.settings import Principal
from chaingate.store import addresses, alerts, deposits

log = structlog.get_logger(__name__)
_USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")


@dataclass
class ApiContext:
    db: asyncpg.Pool
    networks: Mapping[str, Network]
    codecs: Mapping[str, AddressCodec]
    tokens: Mapping[str, Principal]
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    # Extra readiness probes (watchers, endpoint health): name -> () -> (ok, details)
    readiness: dict[str, Callable[[], tuple[bool, Any]]] = field(default_factory=dict)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, default=_encode), status=status, content_type="application/json"
    )


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(int(value)) if value == value.to_integral_value() else str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _error(status: int, code: str, message: str) -> web.Response:
    return _json({"error": {"code": code, "message": message}}, status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return _error(exc.status, exc.code, exc.message)
    except ValidationError as exc:
        return _error(422, exc.code, str(exc))
    except NotFoundError as exc:
        return _error(404, exc.code, str(exc))
    except web.HTTPException as exc:
        return _error(exc.status, "http_error", exc.reason)
    except ChaingateError as exc:
        log.error(
            "request_failed", path=request.path, error_type=type(exc).__name__, error=str(exc)
        )
        return _error(503 if exc.code in ("store", "provider") else 500, exc.code, str(exc))


async def _body(request: web.Request, *required: str) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "bad_json", "request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "request body must be a JSON object")
    for name in required:
        if not isinstance(body.get(name), str) or not body[name].strip():
            raise ValidationError(f"'{name}' is required and must be a non-empty string")
    return body


CTX_KEY = web.AppKey("ctx", ApiContext)


def _ctx(request: web.Request) -> ApiContext:
    return request.app[CTX_KEY]


def _network(ctx: ApiContext, name: str) -> Network:
    network = ctx.networks.get(name)
    if network is None:
        raise ValidationError(
            f"unknown network {name!r} (known: {', '.join(sorted(ctx.networks))})"
        )
    return network


def _user_id(value: str) -> str:
    if not _USER_ID.match(value):
        raise ValidationError("'user_id' must be 1-128 characters of letters, digits and _.:@-")
    return value


# --- health ----------------------------------------------------------------------------------
async def healthz(_: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    checks: dict[str, Any] = {}
    ready = True
    try:
        async with ctx.db.acquire() as conn:
            await conn.fetchval("SELECT 1")
        checks["database"] = "ok"
    except (OSError, asyncpg.PostgresError) as exc:
        ready = False
        checks["database"] = f"unavailable: {type(exc).__name__}"
    for name, probe in ctx.readiness.items():
        ok, details = probe()
        ready = ready and ok
        checks[name] = details
    return _json({"ready": ready, "checks": checks}, 200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(_ctx(request).registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


# --- deposits --------------------------------------------------------------------------------
async def post_deposit_address(request: web.Request) -> web.Response:
    principal = require(request, "service")
    ctx = _ctx(request)
    body = await _body(request, "user_id", "network")
    user_id = _user_id(body["user_id"])
    network = _network(ctx, body["network"])
    if network.watch_only:
        raise ValidationError(
            f"{network.name} is watch-only: no deposit addresses are issued there"
        )
    codec = ctx.codecs[network.name]
    try:
        row, created = await addresses.issue_address(ctx.db, network.name, user_id, codec.derive)
    except ConfigError as exc:
        raise ApiError(503, "not_configured", f"{network.name}: {exc}") from None
    if created:
        log.info(
            "deposit_address_issued",
            network=network.name,
            user_id=user_id,
            principal=principal.name,
        )
    return _json(
        {"user_id": row.user_id, "network": row.network, "address": row.address},
        201 if created else 200,
    )


async def get_deposits(request: web.Request) -> web.Response:
    require(request, "service", "viewer")
    ctx = _ctx(request)
    q = request.query
    network = _network(ctx, q["network"]).name if q.get("network") else None
    status = q.get("status") or None
    if status is not None and status not in {s.value for s in DepositStatus}:
        raise ValidationError(f"unknown status {status!r}")
    user_id = _user_id(q["user_id"]) if q.get("user_id") else None
    limit = _limit(q.get("limit"))
    async with ctx.db.acquire() as conn:
        rows = await deposits.list_deposits(
            conn, user_id=user_id, network=network, status=status, limit=limit
        )
    return _json({"deposits": rows})


def _limit(raw: str | None) -> int:
    if raw is None:
        return 100
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise ValidationError("'limit' must be an integer from 1 to 1000")
    return int(raw)


# --- alerts ----------------------------------------------------------------------------------
async def get_alerts(request: web.Request) -> web.Response:
    require(request, "viewer", "ops_maker", "ops_approver")
    open_only = request.query.get("open", "") in ("1", "true")
    async with _ctx(request).db.acquire() as conn:
        rows = await alerts.list_alerts(
            conn, open_only=open_only, limit=_limit(request.query.get("limit"))
        )
    return _json({"alerts": rows})


async def ack_alert(request: web.Request) -> web.Response:
    principal = require(request, "ops_maker", "ops_approver")
    raw = request.match_info["alert_id"]
    if not raw.isdigit():
        raise ValidationError("alert id must be an integer")
    async with _ctx(request).db.acquire() as conn, conn.transaction():
        if not await alerts.acknowledge(conn, int(raw), principal.name):
            exists = await conn.fetchval("SELECT 1 FROM alerts WHERE id = $1", int(raw))
            if not exists:
                raise NotFoundError(f"no alert {raw}")
            return _json({"id": int(raw), "acknowledged": True, "already": True})
        await alerts.audit(conn, principal.name, "alert.ack", f"alert:{raw}", {})
    return _json({"id": int(raw), "acknowledged": True})


def build_app(ctx: ApiContext) -> web.Application:
    app = web.Application(middlewares=[errors_middleware], client_max_size=64 * 1024)
    app[CTX_KEY] = ctx
    app[TOKENS_KEY] = TokenTable(ctx.tokens)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/v1/deposit-addresses", post_deposit_address)
    app.router.add_get("/v1/deposits", get_deposits)
    app.router.add_get("/v1/alerts", get_alerts)
    app.router.add_post("/v1/alerts/{alert_id}/ack", ack_alert)
    return app
