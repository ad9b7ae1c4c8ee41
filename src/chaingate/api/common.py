"""What every API area shares: the context, JSON responses, the error middleware, edge parsing."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from chaingate.api.auth import ApiError, Handler
from chaingate.api.edge import (
    check_request_text,
    cursor_id,
    cursor_of,
    parse_int64,
    parse_limit,
    read_body,
    txid_of,
    user_id_of,
)
from chaingate.api.issuance import HistoryOpener
from chaingate.chains.base import AddressCodec
from chaingate.domain import Network
from chaingate.errors import (
    ChaingateError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    SealKeyMissingError,
    ValidationError,
)
from chaingate.settings import Principal

log = structlog.get_logger(__name__)


@dataclass
class ApiContext:
    db: asyncpg.Pool
    networks: Mapping[str, Network]
    codecs: Mapping[str, AddressCodec]
    tokens: Mapping[str, Principal]
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    # Withdrawal approvals: distinct approvers a batch needs, and the key that seals approvals.
    approval_quorum: int = 2
    seal_key: bytes = field(default=b"", repr=False)
    # Extra readiness probes (watchers, endpoint health): name -> () -> (ok, details)
    readiness: dict[str, Callable[[], tuple[bool, Any]]] = field(default_factory=dict)
    # Fernet key of the ops console's session cookie; None serves no console (see console/).
    console_session_key: str | None = field(default=None, repr=False)
    # The address-index guard (api/issuance.py): where each network's addresses start on a
    # fresh database, and how on-chain history is read (None: not checked; tests only).
    address_start: Mapping[str, int] = field(default_factory=dict)
    address_history: HistoryOpener | None = None


CTX_KEY = web.AppKey("ctx", ApiContext)


def ctx_of(request: web.Request) -> ApiContext:
    return request.app[CTX_KEY]


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, default=_encode), status=status, content_type="application/json"
    )


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(int(value)) if value == value.to_integral_value() else str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def error_response(status: int, code: str, message: str) -> web.Response:
    return json_response({"error": {"code": code, "message": message}}, status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        check_request_text(request)
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except ValidationError as exc:
        return error_response(422, exc.code, str(exc))
    except NotFoundError as exc:
        return error_response(404, exc.code, str(exc))
    except ConflictError as exc:
        return error_response(409, exc.code, str(exc))
    except PermissionDeniedError as exc:
        return error_response(403, exc.code, str(exc))
    except SealKeyMissingError as exc:
        return error_response(503, exc.code, str(exc))
    except web.HTTPException as exc:
        return error_response(exc.status, "http_error", exc.reason)
    except ChaingateError as exc:
        log.error(
            "request_failed", path=request.path, error_type=type(exc).__name__, error=str(exc)
        )
        return error_response(503 if exc.code in ("store", "provider") else 500, exc.code, str(exc))
    except (asyncpg.PostgresConnectionError, OSError):
        log.warning("request_failed", path=request.path, error_type="database_unavailable")
        return error_response(503, "unavailable", "the database is unavailable; try again")
    except Exception:
        # The safety net: a bug must not show a traceback to the caller. The event (with its
        # traceback, as JSON) goes to the log; the caller gets an id-less generic 500.
        log.exception("request_crashed", path=request.path, method=request.method)
        return error_response(500, "internal", "internal error")


async def optional_body(request: web.Request) -> dict[str, Any]:
    """The JSON object body, or {} when the request has none (e.g. an ack without a note)."""
    if not request.can_read_body:
        return {}
    return await read_body(request)


def id_of(request: web.Request, name: str, what: str) -> int:
    """A positive integer path parameter (a bigint id)."""
    return parse_int64(request.match_info[name], what, minimum=1)


def network_of(ctx: ApiContext, name: str) -> Network:
    network = ctx.networks.get(name)
    if network is None:
        raise ValidationError(
            f"unknown network {name!r} (known: {', '.join(sorted(ctx.networks))})"
        )
    return network


def parse_time(raw: str | None, name: str) -> datetime | None:
    """An ISO-8601 time with its offset (a bare date or naive time is refused: ambiguous)."""
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise ValidationError(
            f"'{name}' must be an ISO-8601 time with an offset, e.g. 2026-11-30T12:00Z"
        )
    return value


__all__ = [
    "CTX_KEY",
    "ApiContext",
    "ApiError",
    "ctx_of",
    "cursor_id",
    "cursor_of",
    "error_response",
    "errors_middleware",
    "id_of",
    "json_response",
    "network_of",
    "optional_body",
    "parse_int64",
    "parse_limit",
    "parse_time",
    "read_body",
    "txid_of",
    "user_id_of",
]
