"""``chaingate`` command line (SPEC section 10). Every command has ``--help``.

One module per area registers its commands (`register(subparsers)`). Errors the user can fix
(configuration, an unreachable database) are printed as one line to stderr with exit status 2;
nothing else is printed for them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from chaingate.cli import devnet, ops, service, signer
from chaingate.errors import ChaingateError
from chaingate.logs import configure_logging

AREAS = (service, signer, devnet, ops)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chaingate",
        description="Deposit and withdrawal gateway. Configuration: the chains/ registry "
        "(CHAINGATE_CHAINS_DIR, CHAINGATE_NETWORKS) and CHAINGATE_* environment variables.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for area in AREAS:
        area.register(sub)
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
