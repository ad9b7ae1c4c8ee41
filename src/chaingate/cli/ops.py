"""`chaingate ops ...`: the operator's command line, over the gateway API with the operator's
token (CHAINGATE_OPS_TOKEN, CHAINGATE_API_URL), so it obeys the same roles, rules and audit log
as the console. Tables for people, ``--json`` for scripts.

Exit status: 0 done; 1 refused because of the object's state (HTTP 409: already approved, not
parked, a stale content hash); 2 any other error (401, 403, 422, API unreachable), one line on
stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from chaingate.cli import ops_batches
from chaingate.cli.tables import Column, col, emit, say
from chaingate.errors import ApiCallError, ConfigError, ValidationError
from chaingate.ops.client import OpsApiClient

DEFAULT_API_URL = "http://127.0.0.1:8080"
Command = Callable[[OpsApiClient, argparse.Namespace], Awaitable[int]]


def common_options() -> argparse.ArgumentParser:
    """--api-url, --token and --json on every ops command (after the command's name)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--api-url",
        default=os.environ.get("CHAINGATE_API_URL", DEFAULT_API_URL),
        help="gateway API (default: $CHAINGATE_API_URL or %(default)s)",
    )
    p.add_argument(
        "--token",
        default=None,
        help="operator's API token (default: $CHAINGATE_OPS_TOKEN; prefer the variable: "
        "a command line is visible to other users)",
    )
    p.add_argument("--json", action="store_true", help="print the API's JSON (for scripts)")
    return p


def runs(command: Command) -> Callable[[argparse.Namespace], Awaitable[int]]:
    async def run(args: argparse.Namespace) -> int:
        token = args.token or os.environ.get("CHAINGATE_OPS_TOKEN", "")
        if not token.strip():
            raise ConfigError("CHAINGATE_OPS_TOKEN: not set (or pass --token)")
        try:
            async with OpsApiClient(args.api_url, token.strip()) as api:
                return await command(api, args)
        except ApiCallError as exc:
            if exc.status == 409:
                print(f"chaingate: {exc}", file=sys.stderr)
                return 1
            raise

    return run


# --- alerts ---------------------------------------------------------------------------------
ALERT_COLUMNS = [
    Column("ID", lambda a: f"#{a['id']}", right=True),
    Column("STATE", lambda a: "ACK" if a.get("acknowledged_at") else "OPEN"),
    col("SEVERITY", "severity"),
    col("KIND", "kind"),
    col("NETWORK", "network"),
    col("ASSET", "asset"),
    col("AMOUNT", "amount", right=True),
    col("USER", "user_id"),
    col("MESSAGE", "message"),
]


async def alerts_list(api: OpsApiClient, args: argparse.Namespace) -> int:
    data = await api.get(
        "/v1/alerts",
        open="" if args.all else "true",
        severity=args.severity or "",
        kind=args.kind or "",
    )
    emit(data, args.json, data["alerts"], ALERT_COLUMNS, "no open alerts")
    return 0


async def alerts_ack(api: OpsApiClient, args: argparse.Namespace) -> int:
    data = await api.post(f"/v1/alerts/{args.id}/ack", {"note": args.note})
    already = " was already" if data.get("already") else ""
    say(data, args.json, f"alert {args.id}{already} acknowledged")
    return 0


async def alerts_undelivered(api: OpsApiClient, args: argparse.Namespace) -> int:
    data = await api.get("/v1/alerts", undelivered="true", limit="1000")
    columns = [
        Column("ID", lambda a: f"#{a['id']}", right=True),
        col("SEVERITY", "severity"),
        col("KIND", "kind"),
        col("ATTEMPTS", "attempts", right=True),
        col("NEXT ATTEMPT", "next_attempt_at"),
        col("LAST ERROR", "last_error"),
    ]
    emit(data, args.json, data["alerts"], columns, "every alert reached the webhook")
    return 0


async def alerts_redeliver(api: OpsApiClient, args: argparse.Namespace) -> int:
    if not args.ids and not args.all:
        raise ValidationError("ops alerts redeliver: give alert ids or --all")
    body: dict[str, Any] = {"all": True} if args.all else {"ids": args.ids}
    data = await api.post("/v1/alerts/redeliver", body)
    say(data, args.json, f"{data['due']} undelivered alert(s) due for the webhook now")
    return 0


# --- outbox ---------------------------------------------------------------------------------
async def outbox_list(api: OpsApiClient, args: argparse.Namespace) -> int:
    data = await api.get("/v1/outbox")
    if args.json:
        emit(data, True, [], [], "")
        return 0
    backlog_columns = [
        col("KIND", "kind"),
        col("PENDING", "pending", right=True),
        col("PARKED", "parked", right=True),
        col("OLDEST", "oldest"),
    ]
    emit(data, False, data["backlog"], backlog_columns, "outbox: nothing undelivered")
    if data["parked"]:
        parked_columns = [
            Column("ID", lambda r: f"#{r['id']}", right=True),
            Column("STATE", lambda _: "PARKED"),
            col("KIND", "kind"),
            col("IDEMPOTENCY KEY", "idempotency_key"),
            col("ATTEMPTS", "attempts", right=True),
            col("LEDGER'S ANSWER", "last_error"),
        ]
        print()
        emit(data, False, data["parked"], parked_columns, "")
    return 0


async def outbox_resend(api: OpsApiClient, args: argparse.Namespace) -> int:
    data = await api.post(f"/v1/outbox/{args.id}/resend", {"note": args.note})
    say(data, args.json, f"outbox row {args.id} due again ({data['idempotency_key']})")
    return 0


# --- the signer's refusals ------------------------------------------------------------------
async def signer_refused(api: OpsApiClient, args: argparse.Namespace) -> int:
    """Batches the signer refused; reject one with ``ops batches reject ID --fail``."""
    data = await api.get("/v1/signer/refused")
    columns = [
        Column("BATCH", lambda j: f"#{j['batch_id']}", right=True),
        col("NETWORK", "network"),
        col("ASSET", "asset"),
        col("TOTAL (BASE UNITS)", "total", right=True),
        col("OUTPUTS", "outputs", right=True),
        col("PARKED", "parked_at"),
        Column("REJECTABLE", lambda j: "yes" if j["rejectable"] else "NO (signed)"),
        col("REASON", "reason"),
    ]
    emit(data, args.json, data["jobs"], columns, "the signer refused nothing")
    return 0


# --- networks -------------------------------------------------------------------------------
def endpoint_state(endpoint: dict[str, Any]) -> str:
    if endpoint.get("chain_check") == "mismatch":
        return "WRONG-CHAIN"
    return "ok" if endpoint.get("healthy") else "DOWN"


async def networks(api: OpsApiClient, args: argparse.Namespace) -> int:
    data = await api.get("/v1/networks")
    rows = data.get("networks", []) if isinstance(data, dict) else []
    columns = [
        col("NETWORK", "network"),
        col("HEAD", "head", right=True),
        col("CURSOR", "cursor", right=True),
        col("LAG", "lag_blocks", right=True),
        col("LAG S", "lag_seconds", right=True),
        Column("CAUGHT UP", lambda n: n.get("caught_up")),
        Column(
            "ENDPOINTS",
            lambda n: " ".join(
                f"{e.get('name')}:{endpoint_state(e)}" for e in n.get("endpoints", [])
            ),
        ),
        Column("LEADER", lambda n: (n.get("leader") or {}).get("instance")),
        Column("EPOCH", lambda n: (n.get("leader") or {}).get("epoch"), right=True),
    ]
    emit(data, args.json, rows, columns, "no networks")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "ops",
        help="operations over the API: batches, withdrawals, alerts, the outbox, networks",
        description="Ops commands over the gateway API, as the operator whose token is in "
        "CHAINGATE_OPS_TOKEN (or --token). Exit 1: refused by the object's state (409).",
    )
    common = common_options()
    ops = p.add_subparsers(dest="ops_command", required=True, metavar="OPS_COMMAND")

    def leaf(parent: Any, name: str, command: Command, help: str) -> argparse.ArgumentParser:
        q: argparse.ArgumentParser = parent.add_parser(name, help=help, parents=[common])
        q.set_defaults(func=runs(command))
        return q

    a = ops.add_parser("alerts", help="list, acknowledge or re-push alerts")
    alerts_sub = a.add_subparsers(dest="alerts_action", required=True)
    ls = leaf(alerts_sub, "list", alerts_list, "open alerts (--all: acknowledged too)")
    ls.add_argument("--all", action="store_true", help="include acknowledged alerts")
    ls.add_argument("--severity", choices=["info", "warning", "critical"])
    ls.add_argument("--kind", help="e.g. network_mismatch")
    ack = leaf(alerts_sub, "ack", alerts_ack, "acknowledge an alert, with a note")
    ack.add_argument("id", type=int)
    ack.add_argument("--note", default="", help="what was done (kept in the audit log)")
    leaf(alerts_sub, "undelivered", alerts_undelivered, "alerts not pushed to the webhook yet")
    redo = leaf(
        alerts_sub,
        "redeliver",
        alerts_redeliver,
        "push undelivered alerts now (after the webhook's refusal was fixed)",
    )
    redo.add_argument("ids", type=int, nargs="*", help="alert ids (or --all)")
    redo.add_argument("--all", action="store_true", help="every undelivered alert")

    o = ops.add_parser("outbox", help="ledger outbox backlog; resend a row the ledger refused")
    outbox_sub = o.add_subparsers(dest="outbox_action", required=True)
    leaf(outbox_sub, "list", outbox_list, "undelivered rows by kind, and every parked row")
    for name in ("resend", "unpark"):  # unpark: the name this command had before
        r = leaf(
            outbox_sub,
            name,
            outbox_resend,
            "send a parked row again (same payload, same idempotency key)",
        )
        r.add_argument("id", type=int)
        r.add_argument("--note", default="", help="why it is safe now (kept in the audit log)")

    leaf(ops, "networks", networks, "each network's head, cursor, lag, endpoints and leader")
    sg = ops.add_parser("signer", help="batches the signer refused (reject: ops batches reject)")
    signer_sub = sg.add_subparsers(dest="signer_action", required=True)
    leaf(signer_sub, "refused", signer_refused, "parked signer jobs, oldest first, with reasons")
    ops_batches.register(ops, leaf)
