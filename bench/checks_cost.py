"""What issue 8's answer checks cost in EVM catch-up: Watcher.step to the head with them, and
with them switched off, interleaved (on, off, on, off, ...) on one filled range; medians.

    python bench/checks_cost.py [--blocks 400] [--per-block 50] [--watched 10000] [--rounds 3]

The checks measured: the block hash recomputed from the header (chains/evm/header.py), the
logsBloom completeness of eth_getLogs (chains/evm/logcheck.py), and the shape checks of
transactions, receipts and logs that turn malformed answers into chain-data errors
(chains/evm/rpc.py). "Off" exists only here: this script patches those functions in its own
process for the "off" passes (``checks_off``). chaingate itself has no switch to turn them off.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling modules, run as a script

from chaingate.chains.evm import logcheck, rpc
from chaingate.logs import configure_logging
from chaingate.store import connect_pool
from common import ADMIN_DSN, BareRpc, devnet, throwaway_database, timed
from evm_fill import Filler, fresh_address
from evm_scan import bench_network, insert_addresses, watcher_pass


@contextmanager
def checks_off() -> Iterator[None]:
    """Bench only: the answer checks of issue 8 replaced by no-ops in this process."""

    def trusted_hash(raw: Any) -> str:
        return str(raw["hash"]).lower()

    def nothing(*args: Any, **kwargs: Any) -> Any:
        return None

    def no_suspects(*args: Any, **kwargs: Any) -> dict[int, list[str]]:
        return {}

    patches: list[tuple[Any, str, Any]] = [
        (rpc, "header_hash", trusted_hash),
        (rpc, "_check_tx_shape", nothing),
        (rpc, "_check_log_shape", nothing),
        (rpc.EvmRpc, "_checked_receipts", nothing),
        (logcheck, "suspects", no_suspects),
    ]
    saved = [(target, name, getattr(target, name)) for target, name, _ in patches]
    for target, name, value in patches:
        setattr(target, name, value)
    try:
        yield
    finally:
        for target, name, value in saved:
            setattr(target, name, value)


async def main(args: argparse.Namespace) -> None:
    rng = random.Random(2024)
    watched = [fresh_address(rng) for _ in range(args.watched)]
    with tempfile.TemporaryDirectory(prefix="cg-bench-checks-") as folder:
        async with devnet(Path(folder), "evm", ["eth"]) as state:
            assert state.eth_url and state.eth_token, "the eth devnet did not come up"
            async with BareRpc(state.eth_url) as bare:
                filler = Filler(bare, state.eth_token, watched)
                await filler.prepare()
                with timed() as fill_clock:
                    filled = await filler.fill(args.blocks, args.per_block, 0.5)
            print(f"filled {filled.blocks} blocks in {fill_clock.seconds:.1f} s", file=sys.stderr)
            network = bench_network(state.eth_url, state.eth_token, filled.first)
            times: dict[str, list[float]] = {"on": [], "off": []}
            async with throwaway_database(ADMIN_DSN) as dsn:
                db = await connect_pool(dsn, max_size=4)
                try:
                    async with db.acquire() as conn:
                        await insert_addresses(conn, network.name, watched)
                        await conn.execute("ANALYZE deposit_addresses")
                    # A first pass warms the node's caches and the connections; not counted.
                    for mode in ["warm-up"] + ["on", "off"] * args.rounds:
                        await db.execute(
                            """TRUNCATE deposits, chain_cursor, block_hashes, ledger_outbox,
                               leases, alerts RESTART IDENTITY CASCADE"""
                        )
                        if mode != "off":
                            result = await watcher_pass(network, filled, db)
                        else:
                            with checks_off():
                                result = await watcher_pass(network, filled, db)
                        times.setdefault(mode, []).append(result.seconds)
                        print(f"{mode}: {result.seconds:.2f} s", file=sys.stderr)
                finally:
                    await db.close()
    on, off = statistics.median(times["on"]), statistics.median(times["off"])
    print(f"blocks={filled.blocks} per_block={args.per_block} watched={args.watched}")
    print(f"checks on  (s): {', '.join(f'{t:.2f}' for t in times['on'])}; median {on:.2f}")
    print(f"checks off (s): {', '.join(f'{t:.2f}' for t in times['off'])}; median {off:.2f}")
    print(f"cost of the checks: {100 * (on - off) / off:+.1f}% of catch-up time")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--blocks", type=int, default=400)
    p.add_argument("--per-block", type=int, default=50)
    p.add_argument("--watched", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=3)
    return p.parse_args(argv)


if __name__ == "__main__":
    configure_logging("console", "warning")
    asyncio.run(main(parse_args()))
