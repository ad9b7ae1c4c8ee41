"""Console pages that read (networks, deposits, alerts, outbox, audit) and the forms that act
on alerts and the outbox. Batches and withdrawals are in batches.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp_jinja2
import asyncpg
from aiohttp import web
from aiohttp_session import get_session
from multidict import MultiDictProxy

from chaingate.api import networks as network_status
from chaingate.api.common import CTX_KEY, ApiContext, cursor_id, cursor_of, parse_time
from chaingate.console import recovery
from chaingate.console.security import principal, refused, see_other
from chaingate.domain import DepositStatus
from chaingate.errors import ChaingateError, PermissionDeniedError, ValidationError
from chaingate.ops import actions
from chaingate.settings import Principal
from chaingate.store import alerts, audit, deposits, outbox

PAGE = 50
# No real user id, txid, actor or action is longer; a longer filter is refused, not searched.
MAX_FILTER = 200


def filters_of(request: web.Request, names: tuple[str, ...]) -> dict[str, str]:
    """The page's filters from its query string, each stripped (blank: no filter)."""
    return {name: request.query.get(name, "").strip() for name in names}


def check_lengths(filters: dict[str, str]) -> None:
    for name, value in filters.items():
        if len(value) > MAX_FILTER:
            raise ValidationError(f"filter {name} is too long (at most {MAX_FILTER} characters)")


def ctx(request: web.Request) -> ApiContext:
    return request.config_dict[CTX_KEY]


async def flash(request: web.Request, kind: str, message: str) -> None:
    """A one-line result shown on the next page (post, redirect, get)."""
    (await get_session(request))["flash"] = [kind, message]


Form = MultiDictProxy[str | bytes | bytearray | web.FileField]
Action = Callable[[asyncpg.Connection, Principal, Form], Awaitable[str]]


async def act(request: web.Request, back: str | Callable[[], str], run: Action) -> web.Response:
    """Run one console action with the form, the principal and a connection: a 403 page when
    the role is missing (nothing changed), else back to the page (``back``, or what it returns
    after the action) with the outcome or the refusal (a stale hash, a row no longer parked)."""
    form = await request.post()
    try:
        async with ctx(request).db.acquire() as conn:
            message = await run(conn, principal(request), form)
    except PermissionDeniedError as exc:
        return refused(request, 403, str(exc))
    except ChaingateError as exc:
        await flash(request, "error", str(exc))
    else:
        await flash(request, "ok", message)
    return see_other(back if isinstance(back, str) else back())


def decimals_of(c: ApiContext, network: str | None, asset: str | None) -> int | None:
    found = c.networks.get(network or "")
    for candidate in found.assets if found else ():
        if candidate.symbol == asset:
            return candidate.decimals
    return None


def form_id(raw: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 2**62:
        raise web.HTTPNotFound()
    return int(raw)


async def index(_: web.Request) -> web.Response:
    return see_other("/ops/networks")


@aiohttp_jinja2.template("networks.html")
async def networks(request: web.Request) -> dict[str, Any]:
    c = ctx(request)
    async with c.db.acquire() as conn:
        status = await network_status.overview(conn, c.networks)
        backlog = await outbox.backlog(conn)
        open_alerts = await alerts.list_alerts(conn, open_only=True, limit=1000)
    for view in status["networks"]:
        view["confirmations"] = c.networks[view["network"]].confirmations
        view["chain_id"] = c.networks[view["network"]].chain_id
        view["alerts"] = sum(1 for a in open_alerts if a["network"] == view["network"])
    return {"status": status, "backlog": backlog, "now": datetime.now(UTC)}


@aiohttp_jinja2.template("deposits.html")
async def deposit_list(request: web.Request) -> dict[str, Any]:
    q = request.query
    c = ctx(request)
    filters = filters_of(request, ("network", "asset", "status", "user", "txid"))
    error = None
    rows: list[dict[str, Any]] = []
    try:
        check_lengths(filters)
        if filters["status"] and filters["status"] not in {s.value for s in DepositStatus}:
            raise ValidationError(f"unknown status {filters['status']!r}")
        async with c.db.acquire() as conn:
            where = deposits.DepositFilter(
                network=filters["network"] or None,
                asset=filters["asset"] or None,
                status=filters["status"] or None,
                user_id=filters["user"] or None,
                txid=filters["txid"] or None,
                before_id=cursor_id(q["after"]) if q.get("after") else None,
            )
            rows = await deposits.list_deposits(conn, where, PAGE + 1)
    except ValidationError as exc:
        error = str(exc)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    for row in rows:
        row["tx_url"] = recovery.tx_url(c.networks.get(row["network"]), row["txid"])
    return {
        "rows": rows,
        "filters": filters,
        "error": error,
        "next": cursor_of(rows[-1]["id"]) if more else None,
        "networks": sorted(c.networks),
        "assets": sorted({a.symbol for n in c.networks.values() for a in n.assets}),
        "statuses": [s.value for s in DepositStatus],
    }


@aiohttp_jinja2.template("alerts.html")
async def alert_list(request: web.Request) -> dict[str, Any]:
    q = request.query
    state = q.get("state", "open")
    severity = q.get("severity") or None
    kind = q.get("kind") or None
    async with ctx(request).db.acquire() as conn:
        rows = await alerts.list_alerts(
            conn,
            acknowledged={"open": False, "acknowledged": True}.get(state),
            severity=severity if severity in ("info", "warning", "critical") else None,
            kind=kind,
            limit=200,
        )
        kinds = [r["kind"] for r in await conn.fetch("SELECT DISTINCT kind FROM alerts ORDER BY 1")]
    for row in rows:
        row["recovery"] = recovery.for_alert(row["kind"])
        row["decimals"] = decimals_of(ctx(request), row["network"], row["asset"])
    return {
        "rows": rows,
        "state": state,
        "severity": severity or "",
        "kind": kind or "",
        "kinds": kinds,
    }


async def alert_ack(request: web.Request) -> web.Response:
    alert_id = form_id(request.match_info["alert_id"])

    async def run(conn: asyncpg.Connection, who: Principal, form: Form) -> str:
        done = await actions.acknowledge_alert(conn, who, alert_id, str(form.get("note", "")))
        return f"alert {alert_id} " + (
            "was already acknowledged" if done.already else "acknowledged"
        )

    return await act(request, "/ops/alerts", run)


async def alert_redeliver(request: web.Request) -> web.Response:
    alert_id = form_id(request.match_info["alert_id"])

    async def run(conn: asyncpg.Connection, who: Principal, _: Form) -> str:
        count = await actions.redeliver_alerts(conn, who, [alert_id])
        return f"alert {alert_id}: " + ("due for the webhook now" if count else "already delivered")

    return await act(request, "/ops/alerts", run)


@aiohttp_jinja2.template("outbox.html")
async def outbox_list(request: web.Request) -> dict[str, Any]:
    async with ctx(request).db.acquire() as conn:
        backlog = await outbox.backlog(conn)
        parked = await outbox.list_parked(conn, 200)
    return {"backlog": backlog, "parked": parked}


async def outbox_resend(request: web.Request) -> web.Response:
    outbox_id = form_id(request.match_info["outbox_id"])

    async def run(conn: asyncpg.Connection, who: Principal, form: Form) -> str:
        key = await actions.resend_outbox(conn, who, outbox_id, str(form.get("note", "")))
        return f"outbox row {outbox_id} due again ({key})"

    return await act(request, "/ops/outbox", run)


@aiohttp_jinja2.template("audit.html")
async def audit_list(request: web.Request) -> dict[str, Any]:
    q = request.query
    filters = filters_of(request, ("actor", "action", "since", "until"))
    error = None
    rows: list[dict[str, Any]] = []
    try:
        check_lengths(filters)
        async with ctx(request).db.acquire() as conn:
            rows = await audit.entries(
                conn,
                actor=filters["actor"] or None,
                action=filters["action"] or None,
                since=parse_time(filters["since"], "since"),
                until=parse_time(filters["until"], "until"),
                before_id=cursor_id(q["after"]) if q.get("after") else None,
                limit=PAGE + 1,
            )
    except ValidationError as exc:
        error = str(exc)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return {
        "rows": rows,
        "filters": filters,
        "error": error,
        "next": cursor_of(rows[-1]["id"]) if more else None,
    }


async def runbook(request: web.Request) -> web.Response:
    section = recovery.runbook_section(request.match_info["kind"])
    if section is None:
        raise web.HTTPNotFound()
    return aiohttp_jinja2.render_template(
        "runbook.html", request, {"kind": request.match_info["kind"], "text": section}
    )


def routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/networks", networks)
    app.router.add_get("/deposits", deposit_list)
    app.router.add_get("/alerts", alert_list)
    app.router.add_post("/alerts/{alert_id}/ack", alert_ack)
    app.router.add_post("/alerts/{alert_id}/redeliver", alert_redeliver)
    app.router.add_get("/outbox", outbox_list)
    app.router.add_post("/outbox/{outbox_id}/resend", outbox_resend)
    app.router.add_get("/audit", audit_list)
    app.router.add_get("/runbook/{kind}", runbook)
