"""`chaingate migrate`, `chaingate run`, `chaingate signer`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from chaingate.cli.common import settings, stop_on_signals


async def _migrate(_: argparse.Namespace) -> int:
    from chaingate.store import apply_migrations, connect_pool

    pool = await connect_pool(settings().database_url, max_size=1)
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
    await run_service(settings(), roles, stop_on_signals())
    return 0


async def _signer(_: argparse.Namespace) -> int:
    print(
        "chaingate signer: withdrawals and the signer are not part of this build yet",
        file=sys.stderr,
    )
    return 2


def register(sub: Any) -> None:
    p = sub.add_parser("migrate", help="apply database migrations (idempotent, safe to run twice)")
    p.set_defaults(func=_migrate)
    p = sub.add_parser("run", help="run the gateway (api, watchers, dispatcher)")
    p.add_argument(
        "--roles", help="comma-separated roles to run (default: all): api,watchers,dispatcher"
    )
    p.set_defaults(func=_run)
    p = sub.add_parser("signer", help="run the key-holding signer (arrives with withdrawals)")
    p.set_defaults(func=_signer)
