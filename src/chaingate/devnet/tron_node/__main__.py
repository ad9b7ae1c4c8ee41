"""``python -m chaingate.devnet.tron_node``: start the TRON devnet HTTP server."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import structlog
from aiohttp import web

from chaingate.chains.tron.addresses import to_base58
from chaingate.devnet.tron_node import GENESIS_BALANCE_SUN, genesis_accounts
from chaingate.devnet.tron_node.chain import Chain
from chaingate.devnet.tron_node.server import create_app

GENESIS_USDT_SUPPLY = 10**15  # 1,000,000,000 USDT (6 decimals)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="TRON devnet (java-tron HTTP API subset)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--data-dir", type=Path, required=True, help="log directory")
    parser.add_argument(
        "--auto-mine",
        type=float,
        default=None,
        metavar="SECONDS",
        help="produce a block every SECONDS (default: only on /devnet/mine)",
    )
    parser.add_argument(
        "--solidify-lag",
        type=int,
        default=19,
        metavar="BLOCKS",
        help="blocks the solidified head trails the head (default 19)",
    )
    args = parser.parse_args(argv)

    args.data_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        filename=args.data_dir / "tron-devnet.log", level=logging.INFO, format="%(message)s"
    )
    structlog.configure(logger_factory=structlog.stdlib.LoggerFactory())
    accounts = genesis_accounts()
    chain = Chain({a: GENESIS_BALANCE_SUN for a in accounts.values()}, args.solidify_lag)
    for raw in accounts.values():
        print(f"genesis account {to_base58(raw)} {GENESIS_BALANCE_SUN} sun", flush=True)
    # The USDT stand-in exists from genesis so chains/devnet/tron-devnet.toml can list it:
    # the first deployment's address is fixed (see Chain.deploy_trc20).
    usdt = chain.deploy_trc20("USDT", 6, next(iter(accounts.values())), GENESIS_USDT_SUPPLY)
    print(f"genesis TRC-20 USDT {to_base58(usdt)}", flush=True)
    web.run_app(
        create_app(chain, args.auto_mine),
        host=args.host,
        port=args.port,
        print=None,
        access_log=None,
    )


if __name__ == "__main__":
    main()
