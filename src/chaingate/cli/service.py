"""`chaingate migrate`, `chaingate run` (`chaingate signer` is in cli/signer.py)."""

from __future__ import annotations

import argparse
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


def register(sub: Any) -> None:
    p = sub.add_parser("migrate", help="apply database migrations (idempotent, safe to run twice)")
    p.set_defaults(func=_migrate)
    p = sub.add_parser("run", help="run the gateway (api, watchers, dispatcher)")
    p.add_argument(
        "--roles",
        help="comma-separated roles to run (default: all): api,watchers,dispatcher,broadcaster",
    )
    p.set_defaults(func=_run)
