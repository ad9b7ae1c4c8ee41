"""``python -m chaingate.ledger.reference --host 127.0.0.1 --port 8700``.

The database comes from CHAINGATE_LEDGER_DATABASE_URL and the shared secret from
CHAINGATE_LEDGER_SECRET; neither is ever printed or logged.
"""

from __future__ import annotations

import argparse
import os
import sys

from aiohttp import web

from chaingate.ledger.reference.app import build_ledger_app
from chaingate.ledger.signing import DEFAULT_MAX_SKEW


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m chaingate.ledger.reference",
        description="Run the chaingate reference ledger (HMAC-signed, idempotent, PostgreSQL).",
        epilog="Environment: CHAINGATE_LEDGER_DATABASE_URL (PostgreSQL DSN), "
        "CHAINGATE_LEDGER_SECRET (shared HMAC secret).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8700)
    parser.add_argument(
        "--max-skew",
        type=int,
        default=DEFAULT_MAX_SKEW,
        help="seconds a signed timestamp may differ from this clock",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    dsn = os.environ.get("CHAINGATE_LEDGER_DATABASE_URL", "")
    secret = os.environ.get("CHAINGATE_LEDGER_SECRET", "")
    missing = [
        name
        for name, value in (
            ("CHAINGATE_LEDGER_DATABASE_URL", dsn),
            ("CHAINGATE_LEDGER_SECRET", secret),
        )
        if not value
    ]
    if missing:
        print(f"error: set {', '.join(missing)}", file=sys.stderr)
        return 2
    app = build_ledger_app(dsn, secret.encode("utf-8"), max_skew=args.max_skew)
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
