"""`chaingate devnet up|down|status` and `chaingate demo`."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from chaingate.cli.common import send_logs_to


def _config(root: Path | None) -> Any:
    from chaingate.devnet.config import DevnetConfig

    if root is None:
        return DevnetConfig.default()
    return DevnetConfig.load(root.resolve())


async def _devnet(args: argparse.Namespace) -> int:
    from chaingate.devnet import manager

    cfg = _config(args.root)
    log_file = cfg.root / "devnet.log"
    if not args.verbose:
        send_logs_to(log_file)
    if args.action == "up":
        return await _up(cfg, None if args.verbose else log_file)
    if args.action == "down":
        await manager.down(cfg)
        print(f"devnet under {cfg.root} stopped")
        return 0
    report = await manager.status(cfg, os.environ)
    print("\n".join(report.lines()))
    return 0 if report.all_up else 1


async def _up(cfg: Any, log_file: Path | None) -> int:
    from chaingate.demo.story import shown
    from chaingate.devnet import manager

    print(f"devnet up under {cfg.root}" + (f" (logs: {shown(log_file)})" if log_file else ""))
    parts = [f"{name} ({manager.describe(cfg, name)})" for name in sorted(cfg.components)]
    print(f"  starting {', '.join(parts)}", flush=True)
    started = time.monotonic()

    def ready(c: manager.ComponentUp) -> None:
        how = "already running" if c.reused else "started"
        print(f"  {c.name:10} {how:15} {c.seconds:5.1f} s  {c.detail}".rstrip(), flush=True)

    state = await manager.up(cfg, os.environ, on_ready=ready)
    print(f"devnet up in {time.monotonic() - started:.1f} s")
    # Never the litecoind URL or the database DSN: they carry credentials.
    for label, value in [
        ("ethereum (anvil)", state.eth_url), ("bsc stand-in (anvil)", state.bsc_url),
        ("NEXO token", state.eth_token), ("tron devnet", state.tron_url),
        ("bitcoin (litecoind regtest)",
         f"credentials in {cfg.component_dir('litecoind') / 'rpc-credentials.json'}"),
        ("database", state.database_source),
    ]:  # fmt: skip
        if value is not None:
            print(f"  {label:28} {value}")
    return 0


async def _demo(args: argparse.Namespace) -> int:
    from chaingate.demo import run_demo
    from chaingate.demo.story import story_for

    cfg = _config(args.devnet)
    log_file = cfg.root / "demo.log"
    if not args.verbose:
        send_logs_to(log_file, fresh=True)
    story = story_for(sys.stdout, once=args.once, capture=args.capture)
    code: int = await run_demo(
        keep_running=args.keep_running,
        config=cfg,
        database_prefix=args.database_prefix,
        timeout=args.timeout,
        story=story,
        log_file=None if args.verbose else log_file,
        tick=args.tick,
    )
    return code


def register(sub: Any) -> None:
    p = sub.add_parser("devnet", help="start, stop or inspect the local devnet nodes")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument(
        "--root",
        type=Path,
        help="the devnet's folder (default: .devnet of the checkout, fixed ports); its "
        "config.json holds the ports, so several devnets can run side by side",
    )
    p.add_argument(
        "--verbose", action="store_true", help="log to stderr instead of <root>/devnet.log"
    )
    p.set_defaults(func=_devnet)
    p = sub.add_parser(
        "demo",
        help="run the end-to-end demo on the local devnet",
        description="Deposits on every devnet chain, watched to their credit in the ledger, a "
        "network-mismatch alert, then a summary and PASS/FAIL (exit code 0/1). The service's "
        "logs go to <devnet>/demo.log.",
    )
    p.add_argument("--keep-running", action="store_true", help="keep the gateway up after the demo")
    p.add_argument(
        "--once",
        action="store_true",
        help="no live redraws: one line per change (also when stdout is not a terminal or CI "
        "is set)",
    )
    p.add_argument("--verbose", action="store_true", help="stream the service's logs to stderr")
    p.add_argument(
        "--devnet", type=Path, help="the devnet folder to use (default: .devnet, fixed ports)"
    )
    p.add_argument(
        "--database-prefix",
        default="chaingate_demo",
        help="the demo's databases: PREFIX (gateway) and PREFIX_ledger, re-created each run",
    )
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the outcomes")
    p.add_argument(
        "--tick", type=float, default=0.7, help="seconds between the blocks the demo mines"
    )
    p.add_argument(
        "--capture", type=Path, help="also write the terminal output to this .svg/.txt file"
    )
    p.set_defaults(func=_demo)
