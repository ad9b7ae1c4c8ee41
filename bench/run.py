"""`make bench`: measure chaingate against baselines in the same run and write the table.

    python bench/run.py                      # everything, default sizes (~6 minutes, 2 cores)
    python bench/run.py --only evm,btc       # a subset
    python bench/run.py --quick              # small sizes: a smoke run of every measurement

Every node and database is the bench's own (free ports, ``cg_bench_<hex>`` databases on the
local PostgreSQL) and is torn down at the end, also when a measurement fails. A failed
measurement is reported and the others still run; docs/benchmarks.md is only rewritten when
every requested measurement succeeded (a broken run never replaces good numbers).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling modules, run as a script

from addressbook_memory import run_addressbook
from btc_batch import run_batch
from btc_scan import BtcParams, run_bitcoin
from chaingate.devnet.config import LITECOIND
from chaingate.logs import configure_logging
from chaingate.settings import PROJECT_ROOT
from checks_cost import run_checks_cost
from common import ADMIN_DSN, load_average, machine_info, throwaway_database
from evm_scan import EvmParams, mainnet_like, run_evm
from evm_signing import run_signing
from head_to_ledger import run_head_to_ledger
from ledger_credits import run_credits
from progress import measuring
from report import Report, render
from tron_scan import TronParams, run_tron
from withdrawal_latency import run_latency

T = TypeVar("T")
MEASUREMENTS = (
    "evm",
    "mainnet",
    "book",
    "credits",
    "btc",
    "tron",
    "sign",
    "btcbatch",
    "checks",
    "latency",
    "head",
)
QUICK = {
    "evm_blocks": 100,
    "evm_per_block": 20,
    "evm_watched": 5_000,
    "mainnet_blocks": 50,
    "mainnet_watched": 20_000,
    "book_addresses": 50_000,
    "credits": 300,
    "btc_blocks": 2,
    "btc_per_block": 300,
    "btc_watched": 1_000,
    "btc_repeats": 1,
    "tron_blocks": 4,
    "tron_per_block": 50,
    "sign_count": 200,
    "checks_blocks": 30,
    "checks_rounds": 1,
    "latency_batches": 5,
    "head_deposits": 50,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--only",
        default=",".join(MEASUREMENTS),
        help=f"comma-separated subset of {', '.join(MEASUREMENTS)}",
    )
    p.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    p.add_argument("--evm-blocks", type=int, default=2_000)
    p.add_argument("--evm-per-block", type=int, default=50, help="transfers per EVM block")
    p.add_argument("--evm-watched", type=int, default=100_000)
    p.add_argument("--mainnet-blocks", type=int, default=400, help="mainnet-like EVM blocks")
    p.add_argument("--mainnet-watched", type=int, default=1_000_000)
    p.add_argument("--book-addresses", type=int, default=1_000_000)
    p.add_argument("--credits", type=int, default=5_000)
    p.add_argument("--credit-batch", type=int, default=100, help="dispatcher batch size")
    p.add_argument("--btc-blocks", type=int, default=20)
    p.add_argument("--btc-per-block", type=int, default=2_000)
    p.add_argument("--btc-watched", type=int, default=10_000)
    p.add_argument("--btc-repeats", type=int, default=3)
    p.add_argument("--tron-blocks", type=int, default=40)
    p.add_argument("--tron-per-block", type=int, default=250, help="transfers per TRON block")
    p.add_argument("--sign-count", type=int, default=3_000, help="EVM transactions to sign")
    p.add_argument("--checks-blocks", type=int, default=300, help="blocks of the checks' cost")
    p.add_argument("--checks-rounds", type=int, default=4, help="on/off pairs, interleaved")
    p.add_argument(
        "--latency-batches", type=int, default=30, help="batches timed from quorum to broadcast"
    )
    p.add_argument(
        "--head-deposits", type=int, default=500, help="deposits timed from head to ledger"
    )
    p.add_argument(
        "--admin-dsn",
        default=os.environ.get("CHAINGATE_BENCH_ADMIN_DSN", ADMIN_DSN),
        help="PostgreSQL server where cg_bench_<hex> databases are created",
    )
    p.add_argument("--output", type=Path, default=PROJECT_ROOT / "docs" / "benchmarks.md")
    p.add_argument("--no-write", action="store_true", help="print only; leave the docs alone")
    args = p.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
        args.no_write = True
    chosen = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = set(chosen) - set(MEASUREMENTS)
    if unknown:
        p.error(f"unknown measurements: {', '.join(sorted(unknown))}")
    args.only = chosen
    return args


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (
        (out.stdout or out.stderr).strip().splitlines()[0]
        if (out.stdout or out.stderr)
        else "unknown"
    )


async def _postgres_version(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def _machine(admin_dsn: str) -> dict[str, str]:
    info = machine_info()
    info["PostgreSQL"] = await _postgres_version(admin_dsn)
    info["anvil"] = _version([str(PROJECT_ROOT / "node_modules" / ".bin" / "anvil"), "--version"])
    info["litecoind"] = _version([LITECOIND, "-version"])
    info["load average at start"] = load_average()
    return info


def _params(args: argparse.Namespace) -> dict[str, Any]:
    keys = [
        "evm_blocks",
        "evm_per_block",
        "evm_watched",
        "mainnet_blocks",
        "mainnet_watched",
        "book_addresses",
        "credits",
        "credit_batch",
        "btc_blocks",
        "checks_blocks",
        "checks_rounds",
        "btc_per_block",
        "btc_watched",
        "btc_repeats",
        "tron_blocks",
        "tron_per_block",
        "sign_count",
        "latency_batches",
        "head_deposits",
    ]
    return {k: getattr(args, k) for k in keys}


async def _attempt(report: Report, name: str, make: Callable[[], Awaitable[T]]) -> T | None:
    index = report.attempts = report.attempts + 1
    async with measuring(index, report.planned, name) as current:
        try:
            result = await make()
        except Exception as exc:  # one failed measurement must not stop the others
            traceback.print_exc()
            report.failures[name] = f"{type(exc).__name__}: {exc}"
            current.say(f"FAILED: {type(exc).__name__}")
            return None
        current.say("done")
    return result


async def run(args: argparse.Namespace) -> Report:
    started = time.perf_counter()
    report = Report(
        started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        seconds=0.0,
        machine=await _machine(args.admin_dsn),
        params=_params(args),
    )
    dsn = args.admin_dsn
    report.planned = len(args.only)
    with tempfile.TemporaryDirectory(prefix="cg-bench-") as folder:
        tmp = Path(folder)
        # Runs that start nodes go first: devnet starts failed more often (see common.devnet)
        # once this process held the 1M-address book.
        if "btc" in args.only:
            btc_params = BtcParams(
                args.btc_blocks, args.btc_per_block, args.btc_watched, args.btc_repeats
            )
            report.btc = await _attempt(report, "btc", lambda: run_bitcoin(tmp, btc_params))
        if "tron" in args.only:
            tron = TronParams(args.tron_blocks, args.tron_per_block, 10_000, args.btc_repeats)
            report.tron = await _attempt(report, "tron", lambda: run_tron(tmp, tron))
        if "checks" in args.only:

            async def checks() -> Any:
                return await run_checks_cost(
                    tmp, dsn, args.checks_blocks, 50, 10_000, args.checks_rounds
                )

            report.checks = await _attempt(report, "checks", checks)
        if "evm" in args.only:
            params = EvmParams(args.evm_blocks, args.evm_per_block, args.evm_watched)

            async def evm() -> Any:
                async with throwaway_database(dsn) as db:
                    return await run_evm(tmp, db, params)

            report.evm = await _attempt(report, "evm", evm)
        if "mainnet" in args.only:
            like = mainnet_like(args.mainnet_blocks, args.mainnet_watched)

            async def mainnet() -> Any:
                async with throwaway_database(dsn) as db:
                    return await run_evm(tmp, db, like)

            report.evm_mainnet = await _attempt(report, "mainnet", mainnet)
        if "credits" in args.only:

            async def credits() -> Any:
                async with throwaway_database(dsn) as db:
                    return await run_credits(tmp, dsn, db, args.credits, args.credit_batch)

            report.credits = await _attempt(report, "credits", credits)
        if "book" in args.only:

            async def book() -> Any:
                async with throwaway_database(dsn) as db:
                    return await run_addressbook(db, args.book_addresses)

            report.book = await _attempt(report, "book", book)
        if "latency" in args.only:

            async def latency() -> Any:
                async with throwaway_database(dsn) as db:
                    return await run_latency(tmp, db, args.latency_batches)

            report.latency = await _attempt(report, "latency", latency)
        if "head" in args.only:

            async def head() -> Any:
                return await run_head_to_ledger(tmp, dsn, args.head_deposits)

            report.head = await _attempt(report, "head", head)
    if "sign" in args.only:

        async def sign() -> Any:
            return await asyncio.to_thread(run_signing, args.sign_count)

        report.signing = await _attempt(report, "sign", sign)
    if "btcbatch" in args.only:

        async def btcbatch() -> Any:
            return await asyncio.to_thread(run_batch, 1_000)

        report.btc_batch = await _attempt(report, "btcbatch", btcbatch)
    report.seconds = time.perf_counter() - started
    report.machine["load average at end"] = load_average()
    return report


PEERS_MARKER = "## Shared peers harness"  # written by hand from ../shared/peers/run_all.sh


def _kept_sections(output: Path) -> str:
    """The shared peers harness's table, which this run does not measure: kept as it was."""
    old = output.read_text() if output.exists() else ""
    at = old.find(PEERS_MARKER)
    return "\n" + old[at:] if at >= 0 else ""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("console", "warning")
    report = asyncio.run(run(args))
    text = render(report)
    print(text)
    if report.failures:
        print(
            f"[bench] failed: {', '.join(report.failures)}; {args.output} left as it was",
            file=sys.stderr,
        )
        return 1
    if not args.no_write:
        args.output.write_text(text + "\n" + _kept_sections(args.output))
        print(f"[bench] wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
