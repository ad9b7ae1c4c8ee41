"""The reference ledger: a small aiohttp service on PostgreSQL with the ledger contract of
SPEC section 6, for devnet, the demo and the tests.

Every request is HMAC-checked before anything else runs. A write request then runs in ONE
transaction: claim its idempotency key (INSERT ... ON CONFLICT DO NOTHING, which makes a
concurrent twin wait on the row until this transaction ends), apply the effect, store the
answer. A repeat with the same key and body gets the stored answer; with another body, 409.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any, TypeVar

import asyncpg
import structlog
from aiohttp import web

from chaingate.ledger.errors import SignatureError
from chaingate.ledger.reference import effects
from chaingate.ledger.reference.effects import Answer, EffectRefusedError
from chaingate.ledger.reference.validation import (
    FieldError,
    parse_credit,
    parse_reversal,
    parse_withdrawal_event,
)
from chaingate.ledger.signing import (
    DEFAULT_MAX_SKEW,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    request_message,
    verify,
)

log = structlog.get_logger(__name__)

Clock = Callable[[], float]
Req = TypeVar("Req")

POOL = web.AppKey("pool", asyncpg.Pool)
SECRET = web.AppKey("secret", bytes)
MAX_SKEW = web.AppKey("max_skew", int)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
_SCHEMA_LOCK = 7_201_001  # pg advisory lock id: two ledgers starting at once create it once


def error_response(
    status: int, code: str, message: str, *, field: str | None = None
) -> web.Response:
    error: dict[str, str] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return web.json_response({"error": error}, status=status)


def _signed_bytes(request: web.Request, body: bytes) -> bytes:
    # raw_path is the target as sent: path and query string, still percent-encoded.
    return request_message(request.method, request.raw_path, body)


@web.middleware
async def signature_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    app = request.app
    body = await request.read()
    try:
        verify(
            app[SECRET],
            request.headers.get(TIMESTAMP_HEADER),
            _signed_bytes(request, body),
            request.headers.get(SIGNATURE_HEADER),
            now=app[CLOCK](),
            max_skew=app[MAX_SKEW],
        )
    except SignatureError as exc:
        log.warning("ledger_request_refused", path=request.path, code=exc.code)
        return error_response(401, exc.code, str(exc))
    return await handler(request)


def _decode(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FieldError("body", "not valid JSON") from exc
    if not isinstance(value, dict):
        raise FieldError("body", "must be a JSON object")
    return value


def _body_hash(body: dict[str, Any]) -> str:
    # Hash the canonical form: a resend that re-serialised the same object (other key order,
    # other spacing, e.g. after a round trip through jsonb) is the same request.
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


async def _run_idempotent(
    pool: asyncpg.Pool,
    route: str,
    key: str,
    body_hash: str,
    apply: Callable[[asyncpg.Connection], Awaitable[Answer]],
) -> web.Response:
    async with pool.acquire() as conn, conn.transaction():
        claimed = await conn.fetchval(
            """
            INSERT INTO refledger.requests (idempotency_key, route, body_hash)
            VALUES ($1, $2, $3) ON CONFLICT (idempotency_key) DO NOTHING RETURNING true
            """,
            key,
            route,
            body_hash,
        )
        if not claimed:
            return await _replay(conn, route, key, body_hash)
        status, answer = await apply(conn)
        await conn.execute(
            "UPDATE refledger.requests SET status_code = $2, response = $3::jsonb"
            " WHERE idempotency_key = $1",
            key,
            status,
            json.dumps(answer),
        )
    log.info("ledger_request_applied", route=route, idempotency_key=key, status=status)
    return web.json_response(answer, status=status)


async def _replay(conn: asyncpg.Connection, route: str, key: str, body_hash: str) -> web.Response:
    first = await conn.fetchrow(
        "SELECT route, body_hash, status_code, response FROM refledger.requests"
        " WHERE idempotency_key = $1",
        key,
    )
    if first["route"] != route or first["body_hash"] != body_hash:
        log.warning("ledger_idempotency_conflict", route=route, idempotency_key=key)
        return error_response(
            409,
            "idempotency_key_reused",
            "this idempotency key was used for a different request",
            field="idempotency_key",
        )
    log.info("ledger_request_replayed", route=route, idempotency_key=key)
    return web.json_response(
        json.loads(first["response"]),
        status=first["status_code"],
        headers={"Idempotent-Replayed": "true"},
    )


def _write_handler(
    route: str,
    parse: Callable[[dict[str, Any]], Req],
    apply: Callable[[asyncpg.Connection, Req], Awaitable[Answer]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        try:
            body = _decode(await request.read())
            parsed = parse(body)
        except FieldError as exc:
            return error_response(422, exc.code, str(exc), field=exc.field)
        key: str = body["idempotency_key"]
        try:
            return await _run_idempotent(
                request.app[POOL],
                route,
                key,
                _body_hash(body),
                lambda conn: apply(conn, parsed),
            )
        except EffectRefusedError as exc:
            log.warning(
                "ledger_request_refused", route=route, idempotency_key=key, code=exc.error_code
            )
            return error_response(exc.status, exc.error_code, str(exc))

    return handle


def _user_id(request: web.Request) -> str | None:
    user_id = request.query.get("user_id", "")
    return user_id if user_id.strip() else None


async def get_balances(request: web.Request) -> web.Response:
    user_id = _user_id(request)
    if user_id is None:
        return error_response(422, "invalid_field", "user_id: required", field="user_id")
    async with request.app[POOL].acquire() as conn:
        balances = await effects.balances_of(conn, user_id)
    return web.json_response({"user_id": user_id, "balances": balances})


async def get_credits(request: web.Request) -> web.Response:
    user_id = _user_id(request)
    if user_id is None:
        return error_response(422, "invalid_field", "user_id: required", field="user_id")
    async with request.app[POOL].acquire() as conn:
        credits = await effects.credits_of(conn, user_id)
    return web.json_response({"user_id": user_id, "credits": credits})


async def ensure_schema(pool: asyncpg.Pool) -> None:
    script = resources.files("chaingate.ledger.reference").joinpath("schema.sql").read_text()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
        await conn.execute(script)


def build_ledger_app(
    dsn: str,
    secret: bytes,
    *,
    max_skew: int = DEFAULT_MAX_SKEW,
    clock: Clock = time.time,
) -> web.Application:
    """The reference ledger as an aiohttp app; its database pool lives in a cleanup context."""
    if not secret:
        raise ValueError("the ledger secret must not be empty")
    app = web.Application(middlewares=[signature_middleware])
    app[SECRET] = secret
    app[MAX_SKEW] = max_skew
    app[CLOCK] = clock

    async def database(app: web.Application) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=10)
        try:
            await ensure_schema(pool)
            app[POOL] = pool
            yield
        finally:
            await pool.close()

    app.cleanup_ctx.append(database)
    app.router.add_post("/credits", _write_handler("credits", parse_credit, effects.apply_credit))
    app.router.add_post(
        "/reversals", _write_handler("reversals", parse_reversal, effects.apply_reversal)
    )
    app.router.add_post(
        "/withdrawal-events",
        _write_handler("withdrawal-events", parse_withdrawal_event, effects.apply_withdrawal_event),
    )
    app.router.add_get("/balances", get_balances)
    app.router.add_get("/credits", get_credits)
    return app


@asynccontextmanager
async def serve_reference_ledger(
    host: str,
    port: int,
    dsn: str,
    secret: bytes,
    *,
    max_skew: int = DEFAULT_MAX_SKEW,
) -> AsyncIterator[str]:
    """Serve the reference ledger in-process; yields its base URL (port 0 picks a free one)."""
    runner = web.AppRunner(build_ledger_app(dsn, secret, max_skew=max_skew), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1]
        log.info("reference_ledger_started", host=host, port=bound_port)
        yield f"http://{host}:{bound_port}"
    finally:
        await runner.cleanup()
        log.info("reference_ledger_stopped", host=host, port=port)
