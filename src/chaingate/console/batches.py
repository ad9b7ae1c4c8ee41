"""Console pages for withdrawals and batches: pending withdrawals and the maker's "create
batch", a batch's full content, and the approver's approve (content hash shown and confirmed)
or reject. Every action is the same ops action the API calls (ops/actions.py), so quorum,
maker-checker and a stale content hash are refused here exactly as there."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
import asyncpg
from aiohttp import web

from chaingate.api.withdrawals import rules_of
from chaingate.console.pages import Form, act, ctx, decimals_of, form_id
from chaingate.console.security import principal
from chaingate.errors import ValidationError
from chaingate.ops import actions
from chaingate.settings import Principal
from chaingate.store import batches as batch_rows
from chaingate.withdrawals import views

# How much of the hash an approver types to confirm it is the one they reviewed.
CONFIRM_CHARS = 8


@aiohttp_jinja2.template("withdrawals.html")
async def withdrawals(request: web.Request) -> dict[str, Any]:
    c = ctx(request)
    async with c.db.acquire() as conn:
        pending = (await views.list_withdrawals(conn, status="requested", limit=500))["withdrawals"]
        recent = (await views.list_batches(conn, c.approval_quorum, limit=50))["batches"]
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for w in pending:
        w["decimals"] = decimals_of(c, w["network"], w["asset"])
        group = groups.setdefault(
            (w["network"], w["asset"]),
            {"network": w["network"], "asset": w["asset"], "decimals": w["decimals"],
             "count": 0, "total": 0, "oldest": w["created_at"]},
        )  # fmt: skip
        group["count"] += 1
        group["total"] += int(w["amount"])
        group["oldest"] = min(group["oldest"], w["created_at"])
    return {"pending": pending, "groups": sorted(groups.values(), key=lambda g: (g["network"], g["asset"])), "batches": recent}  # fmt: skip


async def create(request: web.Request) -> web.Response:
    made: list[int] = []

    async def run(conn: asyncpg.Connection, who: Principal, form: Form) -> str:
        view = await actions.create_batch(
            conn,
            rules_of(ctx(request)),
            who,
            str(form.get("network", "")),
            str(form.get("asset", "")),
        )
        made.append(view["id"])
        return f"batch {view['id']} created with {view['output_count']} output(s)"

    return await act(
        request, lambda: f"/ops/batches/{made[0]}" if made else "/ops/withdrawals", run
    )


@aiohttp_jinja2.template("batch.html")
async def batch(request: web.Request) -> dict[str, Any]:
    batch_id = form_id(request.match_info["batch_id"])
    c = ctx(request)
    async with c.db.acquire() as conn:
        view = await views.get_batch(conn, batch_id, c.approval_quorum)
        job = await batch_rows.signer_job(conn, batch_id)
        txs = await batch_rows.transactions(conn, batch_id)
    who = principal(request)
    approvers = {a["principal"] for a in view["approvals"]}
    open_ = view["status"] == "pending_approval"
    return {
        "b": view,
        "job": job,
        "txs": txs,
        "confirm_chars": CONFIRM_CHARS,
        # Shown only where the action can succeed; the server refuses the rest regardless.
        "may_approve": open_ and actions.may(who, "batch.approve")
        and who.name != view["maker"] and who.name not in approvers,
        # Also an approved batch the signer refused (its job parked, nothing signed).
        "may_reject": actions.may(who, "batch.reject")
        and (open_ or (view["status"] == "approved" and job is not None and job["parked_at"])),
        "own_batch": who.name == view["maker"],
        "approved_by_me": who.name in approvers,
    }  # fmt: skip


async def approve(request: web.Request) -> web.Response:
    batch_id = form_id(request.match_info["batch_id"])

    async def run(conn: asyncpg.Connection, who: Principal, form: Form) -> str:
        reviewed = str(form.get("content_hash", "")).strip().lower()
        typed = str(form.get("confirm", "")).strip().lower()
        if len(reviewed) < CONFIRM_CHARS or typed != reviewed[:CONFIRM_CHARS]:
            raise ValidationError(
                f"type the first {CONFIRM_CHARS} characters of the content hash to confirm it "
                "is the one you reviewed"
            )
        view = await actions.approve_batch(conn, rules_of(ctx(request)), who, batch_id, reviewed)
        quorum = view["quorum"]
        return (
            f"batch {batch_id} approved ({quorum['approvals']}/{quorum['needed']}); "
            f"status {view['status']}"
        )

    return await act(request, f"/ops/batches/{batch_id}", run)


async def reject(request: web.Request) -> web.Response:
    batch_id = form_id(request.match_info["batch_id"])

    async def run(conn: asyncpg.Connection, who: Principal, form: Form) -> str:
        then = form.get("then")
        if then not in ("release", "fail"):
            raise ValidationError("choose what happens to the withdrawals: release or fail")
        reason = str(form.get("reason", ""))
        await actions.reject_batch(
            conn, rules_of(ctx(request)), who, batch_id, reason, then == "release"
        )
        return f"batch {batch_id} rejected"

    return await act(request, f"/ops/batches/{batch_id}", run)


def routes(app: web.Application) -> None:
    app.router.add_get("/withdrawals", withdrawals)
    app.router.add_post("/batches", create)
    app.router.add_get("/batches/{batch_id}", batch)
    app.router.add_post("/batches/{batch_id}/approve", approve)
    app.router.add_post("/batches/{batch_id}/reject", reject)
