"""GATEWAY_CMD for the shared peers harness (../shared/peers/run_all.sh): the real Watcher
catches up the peers chain into a fresh PostgreSQL database.

    GATEWAY_CMD="$PWD/.venv/bin/python $PWD/bench/peers_gateway.py" ../shared/peers/run_all.sh

Env: URL and PEERS_CHAIN (set by run_all.sh), PG_SERVER (postgresql://postgres@127.0.0.1:5432),
TRACING (0/1, default 0 as on ethereum-mainnet), PROFILE (a path: cProfile of the catch-up
loop is dumped there). The watched addresses are loaded by COPY first (not timed); then
``Watcher.step()`` runs until caught up (timed, every check of the adapter and the pool on; a failed step is retried after the
loop's own backoff, as ``Watcher.run`` does:
deposits, block hashes and cursor in one transaction per range, credits into the outbox). The
last stdout line is JSON with ``eth_to_watched`` / ``token_to_watched`` counted from
``deposits``, ``watch_s``, the seconds of the catch-up loop alone, and ``watch_cpu_s``, the CPU
seconds this process spent in it (on a shared machine the steadier measure).
"""

from __future__ import annotations

import asyncio
import cProfile
import dataclasses
import json
import os
import secrets
import sys
import time
from pathlib import Path

from chaingate.chains.registry import build_adapter, open_pool
from chaingate.devnet import postgres
from chaingate.domain import Network
from chaingate.errors import ChaingateError
from chaingate.logs import configure_logging
from chaingate.registry import load_network
from chaingate.settings import PROJECT_ROOT
from chaingate.store import connect_pool
from chaingate.watcher import Watcher
from chaingate.watcher.loop import StepResult

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/common.py
from common import lease_renewed

TOKEN = "0x5fbdb2315678afecb367f032d93f642f64180aa3"


def peers_network(url: str) -> Network:
    net = load_network(PROJECT_ROOT / "chains" / "devnet" / "ethereum-devnet.toml", {})
    return dataclasses.replace(
        net,
        # 30 s, not the devnet's 5 s, as bench/evm_scan.py: on a shared 2-core machine a
        # batch of dense blocks can take longer, and a timed-out range is read twice.
        endpoints=(dataclasses.replace(net.endpoints[0], url=url, timeout=30.0),),
        assets=tuple(
            dataclasses.replace(a, contract=TOKEN) if a.contract else a for a in net.assets
        ),
        tracing=os.environ.get("TRACING", "0") == "1",
        start_height=0,
    )


async def catch_up(watcher: Watcher) -> tuple[StepResult, int]:
    """Step until caught up. A failed step (an endpoint timing out on a busy machine) is
    retried after the watcher loop's own backoff, inside the timed loop: the result and how many
    steps failed."""
    failed = 0
    while True:
        try:
            result = await watcher.step()
        except ChaingateError as exc:
            failed += 1
            print(f"step failed ({type(exc).__name__}), retrying", file=sys.stderr)
            await asyncio.sleep(min(30.0, watcher.network.poll_interval * 2**failed))
            continue
        if result.caught_up:
            return result, failed


async def main() -> None:
    configure_logging(os.environ.get("LOG_FORMAT", "json"), "info")  # as the service runs
    url, chain = os.environ["URL"], Path(os.environ["PEERS_CHAIN"])
    server = os.environ.get("PG_SERVER", "postgresql://postgres@127.0.0.1:5432")
    profile_to = os.environ.get("PROFILE")
    watched = (chain / "watched.txt").read_text().split()
    net = peers_network(url)
    name = f"peers_gw_{secrets.token_hex(4)}"
    dsn = await postgres.fresh_database(server, name, migrate=True)
    db = await connect_pool(dsn, max_size=8)
    try:
        async with db.acquire() as conn:
            await conn.copy_records_to_table(
                "deposit_addresses",
                records=((net.name, f"u{i}", i, k, k) for i, k in enumerate(watched)),
                columns=["network", "user_id", "derivation_index", "address", "match_key"],
            )
            await conn.execute("ANALYZE deposit_addresses")
        async with open_pool(net) as pool:
            watcher = Watcher(build_adapter(net, pool), db)
            profiler = cProfile.Profile() if profile_to else None
            t0, cpu0 = time.perf_counter(), time.process_time()
            if profiler is not None:
                profiler.enable()
            async with lease_renewed(watcher.leadership):
                result, failed = await catch_up(watcher)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(profile_to)
            watcher.pipeline.drop()
        rows = await db.fetch(
            "SELECT asset, count(*) AS n FROM deposits WHERE network = $1 GROUP BY asset", net.name
        )
        counts = {r["asset"]: int(r["n"]) for r in rows}
        out = await db.fetchval("SELECT count(*) FROM ledger_outbox")
    finally:
        await db.close()
        await postgres.drop_database(server, name)
    print(
        f"watcher caught up {result.cursor} blocks in {wall:.2f} s ({failed} steps failed and "
        f"were retried); outbox rows {out}",
        file=sys.stderr,
    )
    print(
        json.dumps(
            {
                "eth_to_watched": counts.get("ETH", 0),
                "token_to_watched": counts.get("NEXO", 0),
                "watch_s": round(wall, 2),
                "watch_cpu_s": round(cpu, 2),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
