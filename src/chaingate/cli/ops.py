"""`chaingate ops ...`: alerts and the ledger outbox, straight on the gateway's database."""

from __future__ import annotations

import argparse
from typing import Any

from chaingate.cli.common import ops_connection
from chaingate.errors import ValidationError


async def _ops_alerts(args: argparse.Namespace) -> int:
    from chaingate.store import alerts, audit

    if args.alerts_action == "redeliver" and not args.ids and not args.all:
        raise ValidationError("ops alerts redeliver: give alert ids or --all")
    async with ops_connection() as conn:
        if args.alerts_action == "ack":
            async with conn.transaction():
                done = await alerts.acknowledge(conn, args.id, args.actor)
                if done:
                    await audit.record(
                        conn, args.actor, "alert.ack", f"alert:{args.id}", {"via": "cli"}
                    )
            print(f"alert {args.id} acknowledged" if done else f"alert {args.id}: not open")
            return 0 if done else 1
        if args.alerts_action == "undelivered":
            for a in await alerts.undelivered_alerts(conn, limit=1000):
                print(
                    f"#{a['id']} {a['severity']} {a['kind']} attempts={a['attempts']} "
                    f"next={a['next_attempt_at'].isoformat()}: {a['last_error'] or '-'}"
                )
            return 0
        if args.alerts_action == "redeliver":
            async with conn.transaction():
                count = await alerts.redeliver(conn, None if args.all else args.ids)
                await audit.record(
                    conn,
                    args.actor,
                    "alert.redeliver",
                    None,
                    {"ids": "all" if args.all else args.ids, "count": count, "via": "cli"},
                )
            print(f"{count} undelivered alert(s) due for the webhook now")
            return 0
        for a in await alerts.list_alerts(conn, open_only=not args.all):
            state = "ACK" if a["acknowledged_at"] else "OPEN"
            print(
                f"#{a['id']} {state} {a['severity']} {a['kind']} {a['network'] or '-'} "
                f"{a['asset'] or '-'} {a['amount'] if a['amount'] is not None else '-'} "
                f"tx={a['txid'] or '-'} user={a['user_id'] or '-'}: {a['message']}"
            )
    return 0


async def _ops_outbox(args: argparse.Namespace) -> int:
    from chaingate.store import outbox

    async with ops_connection() as conn:
        if args.outbox_action == "unpark":
            done = await outbox.unpark(conn, args.id, args.actor)
            print(f"outbox row {args.id} " + ("due again" if done else "is not parked"))
            return 0 if done else 1
        backlog = await outbox.backlog(conn)
        if not backlog:
            print("outbox: nothing undelivered")
        for b in backlog:
            print(
                f"{b['kind']}: {b['pending']} pending, {b['parked']} parked, "
                f"oldest {b['oldest']:%Y-%m-%d %H:%M:%S%z}"
            )
        for row in await outbox.list_parked(conn):
            print(
                f"#{row['id']} PARKED {row['kind']} {row['idempotency_key']} "
                f"attempts={row['attempts']}: {row['last_error']}"
            )
    return 0


async def _ops_signer(args: argparse.Namespace) -> int:
    from chaingate.withdrawals.refused import refused_jobs

    async with ops_connection() as conn:
        if args.signer_action == "reject":
            from chaingate.withdrawals.approvals import reject

            view = await reject(
                conn, _rules(), args.actor, args.batch_id, args.reason, not args.fail
            )
            print(f"batch {view['id']} {view['status']}: withdrawals " + (
                "failed, funds back to the ledger" if args.fail else "back to requested"
            ))  # fmt: skip
            return 0
        jobs = await refused_jobs(conn)
        if not jobs:
            print("signer: no refused job")
        for j in jobs:
            print(
                f"batch {j['batch_id']} {j['network']} {j['asset']} total={j['total']} "
                f"outputs={j['outputs']} parked={j['parked_at']} "
                f"{'rejectable' if j['rejectable'] else 'NOT rejectable (signed)'}: {j['reason']}"
            )
    return 0


def _rules() -> Any:
    from chaingate.chains.registry import address_codec
    from chaingate.cli.common import settings
    from chaingate.withdrawals.rules import WithdrawalRules

    s = settings()
    return WithdrawalRules(
        networks=s.networks,
        codecs={name: address_codec(n) for name, n in s.networks.items()},
        seal_key=s.approval_seal_key,
        quorum=s.approval_quorum,
    )


def register(sub: Any) -> None:
    p = sub.add_parser(
        "ops",
        help="operations: alerts and the ledger outbox (batches and approvals arrive with "
        "withdrawals)",
    )
    ops = p.add_subparsers(dest="ops_command", required=True, metavar="OPS_COMMAND")
    a = ops.add_parser("alerts", help="list, acknowledge or re-push alerts")
    alerts_sub = a.add_subparsers(dest="alerts_action", required=True)
    ls = alerts_sub.add_parser("list", help="list open alerts")
    ls.add_argument("--all", action="store_true", help="include acknowledged alerts")
    ack = alerts_sub.add_parser("ack", help="acknowledge an alert")
    ack.add_argument("id", type=int)
    ack.add_argument("--actor", required=True, help="who acknowledges (recorded in the audit log)")
    alerts_sub.add_parser("undelivered", help="alerts not pushed to the webhook yet")
    redo = alerts_sub.add_parser(
        "redeliver", help="push undelivered alerts now (after the webhook's refusal was fixed)"
    )
    redo.add_argument("ids", type=int, nargs="*", help="alert ids (or --all)")
    redo.add_argument("--all", action="store_true", help="every undelivered alert")
    redo.add_argument("--actor", required=True, help="who re-drives (recorded in the audit log)")
    a.set_defaults(func=_ops_alerts)
    o = ops.add_parser("outbox", help="ledger outbox backlog; un-park a row the ledger refused")
    outbox_sub = o.add_subparsers(dest="outbox_action", required=True)
    outbox_sub.add_parser("list", help="undelivered rows by kind, and every parked row")
    unpark = outbox_sub.add_parser(
        "unpark", help="send a parked row again (same payload, same idempotency key)"
    )
    unpark.add_argument("id", type=int)
    unpark.add_argument("--actor", required=True, help="who un-parks (recorded in the audit log)")
    o.set_defaults(func=_ops_outbox)
    sg = ops.add_parser("signer", help="batches the signer refused: list, or reject one")
    signer_sub = sg.add_subparsers(dest="signer_action", required=True)
    signer_sub.add_parser("refused", help="parked signer jobs (refused batches), oldest first")
    rj = signer_sub.add_parser(
        "reject", help="reject a refused batch (nothing signed): back to pending, or --fail"
    )
    rj.add_argument("batch_id", type=int)
    rj.add_argument("--reason", required=True, help="why (audit log, withdrawal history)")
    rj.add_argument(
        "--fail",
        action="store_true",
        help="fail its withdrawals (funds back to the ledger) instead of re-batching them",
    )
    rj.add_argument("--actor", required=True, help="who rejects (recorded in the audit log)")
    sg.set_defaults(func=_ops_signer)
