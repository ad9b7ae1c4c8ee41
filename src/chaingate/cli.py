"""``chaingate`` command line (SPEC section 10). Every command has ``--help``.

Errors the user can fix (configuration, an unreachable database) are printed as one line to
stderr with exit status 2; nothing else is printed for them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from chaingate.errors import ChaingateError, ValidationError
from chaingate.logs import configure_logging
from chaingate.settings import Settings

if TYPE_CHECKING:
    import asyncpg


def _settings(require_database: bool = True) -> Settings:
    return Settings.from_env(os.environ, require_database=require_database)


async def _migrate(_: argparse.Namespace) -> int:
    from chaingate.store import apply_migrations, connect_pool

    settings = _settings()
    pool = await connect_pool(settings.database_url, max_size=1)
    try:
        async with pool.acquire() as conn:
            applied = await apply_migrations(conn)
    finally:
        await pool.close()
    print(f"applied: {', '.join(applied)}" if applied else "database schema is up to date")
    return 0


async def _run(args: argparse.Namespace) -> int:
    from chaingate.service import parse_roles, run_service

    roles = parse_roles(args.roles)
    settings = _settings()
    stop = _stop_on_signals()
    await run_service(settings, roles, stop)
    return 0


async def _signer(_: argparse.Namespace) -> int:
    print(
        "chaingate signer: withdrawals and the signer are not part of this build yet",
        file=sys.stderr,
    )
    return 2


async def _devnet(args: argparse.Namespace) -> int:
    from chaingate.devnet import manager
    from chaingate.devnet.config import DevnetConfig

    cfg = DevnetConfig.default()
    if args.action == "up":
        state = await manager.up(cfg, os.environ)
        # Never the litecoind URL or the database DSN: they carry credentials.
        print(f"devnet up under {state.config.root}")
        for label, value in [
            ("ethereum (anvil)", state.eth_url), ("bsc stand-in (anvil)", state.bsc_url),
            ("NEXO token", state.eth_token), ("tron devnet", state.tron_url),
            ("bitcoin (litecoind regtest)", "credentials in .devnet/litecoind/rpc-credentials.json"),
            ("database", state.database_source),
        ]:  # fmt: skip
            print(f"  {label:28} {value}")
        return 0
    if args.action == "down":
        await manager.down(cfg)
        print("devnet stopped")
        return 0
    report = await manager.status(cfg, os.environ)
    print("\n".join(report.lines()))
    return 0 if report.all_up else 1


async def _demo(args: argparse.Namespace) -> int:
    from chaingate.demo import run_demo

    code: int = await run_demo(keep_running=args.keep_running)
    return code


@asynccontextmanager
async def _ops_connection() -> AsyncIterator[asyncpg.Connection]:
    """One connection to the gateway's database for an ops command."""
    from chaingate.store import connect_pool

    pool = await connect_pool(_settings().database_url, max_size=1)
    try:
        async with pool.acquire() as conn:
            yield conn
    finally:
        await pool.close()


async def _ops_alerts(args: argparse.Namespace) -> int:
    from chaingate.store import alerts

    if args.alerts_action == "redeliver" and not args.ids and not args.all:
        raise ValidationError("ops alerts redeliver: give alert ids or --all")
    async with _ops_connection() as conn:
        if args.alerts_action == "ack":
            async with conn.transaction():
                done = await alerts.acknowledge(conn, args.id, args.actor)
                if done:
                    await alerts.audit(
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
                await alerts.audit(
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

    async with _ops_connection() as conn:
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


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chaingate",
        description="Deposit and withdrawal gateway. Configuration: the chains/ registry "
        "(CHAINGATE_CHAINS_DIR, CHAINGATE_NETWORKS) and CHAINGATE_* environment variables.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("migrate", help="apply database migrations (idempotent, safe to run twice)")
    p.set_defaults(func=_migrate)
    p = sub.add_parser("run", help="run the gateway (api, watchers, dispatcher)")
    p.add_argument(
        "--roles", help="comma-separated roles to run (default: all): api,watchers,dispatcher"
    )
    p.set_defaults(func=_run)
    p = sub.add_parser("signer", help="run the key-holding signer (arrives with withdrawals)")
    p.set_defaults(func=_signer)
    p = sub.add_parser("devnet", help="start, stop or inspect the local devnet nodes")
    p.add_argument("action", choices=["up", "down", "status"])
    p.set_defaults(func=_devnet)
    p = sub.add_parser("demo", help="run the end-to-end demo on the local devnet")
    p.add_argument("--keep-running", action="store_true", help="keep the gateway up after the demo")
    p.set_defaults(func=_demo)
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(
        os.environ.get("CHAINGATE_LOG_FORMAT", "auto"),
        os.environ.get("CHAINGATE_LOG_LEVEL", "info"),
    )
    func: Callable[[argparse.Namespace], Coroutine[Any, Any, int]] = args.func
    try:
        return asyncio.run(func(args))
    except ChaingateError as exc:
        print(f"chaingate: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
