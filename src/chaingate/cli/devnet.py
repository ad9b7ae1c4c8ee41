"""`chaingate devnet up|down|status` and `chaingate demo`."""

from __future__ import annotations

import argparse
import os
from typing import Any


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


def register(sub: Any) -> None:
    p = sub.add_parser("devnet", help="start, stop or inspect the local devnet nodes")
    p.add_argument("action", choices=["up", "down", "status"])
    p.set_defaults(func=_devnet)
    p = sub.add_parser("demo", help="run the end-to-end demo on the local devnet")
    p.add_argument("--keep-running", action="store_true", help="keep the gateway up after the demo")
    p.set_defaults(func=_demo)
