"""Measurement: from the block that gives a deposit its last confirmation to the ledger's credit.

Everything runs as production runs it, each in its own process: anvil with ``--block-time 1``
(interval mining, as a real chain produces blocks), ``chaingate run --roles watchers,dispatcher``
(the watcher and the outbox dispatcher with the devnet network's settings: poll interval 0.5 s,
3 confirmations) and the reference ledger (``python -m chaingate.ledger.reference``). This
process only sends the deposits and keeps the clock.

The clock: this process subscribes to anvil's ``newHeads`` over a websocket and notes the wall
clock when each head arrives (anvil's block timestamps have whole-second resolution, too coarse
for a 1 s block time). A deposit mined in block B with C required confirmations gets its last
one from block B + C - 1; its latency runs from that head's arrival to the ledger's record of
the credit (``refledger.credits.created_at``: ``now()`` of the ledger's transaction, which it
opens as soon as the request is read, checked and parsed; the answer follows its commit). Also
reported, from the gateway's database: the watcher's credit (``deposits.credited_at``, the
transaction that writes the outbox row) and the dispatcher's record of the ledger's answer
(``ledger_outbox.delivered_at``). All clocks are this machine's.

Deposits: ``per_block`` ETH transfers to distinct watched addresses are sent as each head
arrives, so they land in the next block; blocks until ``count`` are sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from chaingate.devnet import evm_contracts
from chaingate.devnet.config import free_ports
from chaingate.devnet.manager import TOKEN_DECIMALS, TOKEN_NAME, TOKEN_SUPPLY, TOKEN_SYMBOL
from chaingate.registry import load_network
from chaingate.settings import PROJECT_ROOT
from common import BareRpc, child_env, child_process, ledger_process, throwaway_database
from evm_fill import fresh_address
from evm_scan import insert_addresses
from progress import phase

NETWORK = "ethereum-devnet"
SECRET = b"bench-ledger-secret-0123456789abcdef"
BLOCK_TIME = 1
DISPATCHER_INTERVAL = 0.5  # service.py: dispatcher.run(stop, 0.5)
DEPOSIT_WEI = 10**15  # 0.001 ETH, the devnet's minimum deposit
GAS = hex(21_000)
MAX_FEE = hex(50 * 10**9)
TIP = hex(10**9)
# The devnet's 0.5 s poll divides the 1 s block time: the watcher's reads then keep one phase
# against the blocks for a whole run, and a run samples one wait instead of all of them. A
# poll of 0.45 s slides the phase by 0.1 s a block, so every wait from 0 to the interval
# comes up about equally often over a run.
SWEEP_POLL = 0.45


@dataclasses.dataclass
class HeadToLedgerResult:
    count: int
    per_block: int
    blocks: int
    poll_interval: float
    dispatcher_interval: float
    confirmations: int
    to_ledger: list[float]  # confirming head's arrival -> the ledger's record of the credit
    to_watcher: list[float]  # ... -> the watcher's credit (outbox row written)
    to_delivered: list[float]  # ... -> the dispatcher's record of the ledger's answer
    seconds: float  # the sending and crediting phase, wall time

    @property
    def goal(self) -> float:
        return self.poll_interval + 0.25


def quantile(values: list[float], q: float) -> float:
    """Nearest rank: the value below which a fraction ``q`` of the values lie."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


class Heads:
    """The wall clock at which each new head reached this process (anvil's newHeads)."""

    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}
        self.changed = asyncio.Event()
        self.subscribed = asyncio.Event()

    async def follow(self, ws_url: str) -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
            request = {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
            await ws.send_json(request)
            async for msg in ws:
                now = time.time()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                data = json.loads(msg.data)
                if data.get("id") == 1:
                    self.subscribed.set()
                elif data.get("method") == "eth_subscription":
                    number = int(data["params"]["result"]["number"], 16)
                    self.arrived.setdefault(number, now)
                    self.changed.set()

    async def next(self) -> int:
        self.changed.clear()
        await asyncio.wait_for(self.changed.wait(), timeout=30)
        return max(self.arrived)


@contextlib.asynccontextmanager
async def running_anvil(tmp: Path, block_time: int) -> AsyncIterator[str]:
    port = free_ports(1)[0]
    binary = PROJECT_ROOT / "node_modules" / ".bin" / "anvil"
    argv = [str(binary), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--block-time", str(block_time), "--silent"]
    url = f"http://127.0.0.1:{port}"
    async with child_process(argv, child_env(), tmp / "anvil.log"), BareRpc(url, timeout=5) as rpc:
        for _ in range(200):
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                await rpc.call("eth_chainId")
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("anvil did not answer within 20 s")
        yield url


def _chains_dir(tmp: Path, poll_interval: float | None) -> Path:
    """chains/devnet's ethereum-devnet alone (its endpoint comes from the environment), with
    another poll interval if asked."""
    chains = tmp / "chains"
    chains.mkdir(exist_ok=True)
    toml = (PROJECT_ROOT / "chains" / "devnet" / f"{NETWORK}.toml").read_text()
    if poll_interval is not None:
        toml, n = re.subn(r"(?m)^poll_interval = .*$", f"poll_interval = {poll_interval}", toml)
        assert n == 1, "the devnet toml has no poll_interval line"
    (chains / f"{NETWORK}.toml").write_text(toml)
    return chains


async def _wait_for(check: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {seconds:.0f} s")
        await asyncio.sleep(0.2)


async def run_head_to_ledger(
    tmp: Path,
    admin_dsn: str,
    count: int = 500,
    per_block: int = 5,
    poll_interval: float | None = SWEEP_POLL,
) -> HeadToLedgerResult:
    """``poll_interval`` None: the devnet's own (0.5 s)."""
    work = tmp / f"head_to_ledger_{poll_interval}"
    work.mkdir(exist_ok=True)
    chains = _chains_dir(work, poll_interval)
    network = load_network(chains / f"{NETWORK}.toml", {})
    confirmations = network.confirmations
    rng = random.Random(9)
    addresses = [fresh_address(rng) for _ in range(count)]
    async with (
        throwaway_database(admin_dsn, migrate=False) as ledger_dsn,
        throwaway_database(admin_dsn) as db_dsn,
        ledger_process(ledger_dsn, SECRET, work / "ledger.log") as ledger_url,
        running_anvil(work, BLOCK_TIME) as url,
        BareRpc(url) as rpc,
    ):
        phase("anvil --block-time 1: deploying the token, issuing addresses")
        await evm_contracts.deploy_dev_token(
            url, TOKEN_NAME, TOKEN_SYMBOL, TOKEN_DECIMALS, TOKEN_SUPPLY
        )
        db = await asyncpg.connect(db_dsn)
        ledger = await asyncpg.connect(ledger_dsn)
        try:
            await insert_addresses(db, NETWORK, addresses)
            env = child_env(
                CHAINGATE_CHAINS_DIR=str(chains),
                CHAINGATE_ETHEREUM_DEVNET_RPC=url,
                CHAINGATE_DATABASE_URL=db_dsn,
                CHAINGATE_LEDGER_URL=ledger_url,
                CHAINGATE_LEDGER_SECRET=SECRET.decode(),
                CHAINGATE_LOG_FORMAT="json",
            )
            argv = [sys.executable, "-m", "chaingate.cli", "run"]
            argv += ["--roles", "watchers,dispatcher"]
            heads = Heads()
            follower = asyncio.create_task(heads.follow(url.replace("http://", "ws://")))
            try:
                async with child_process(argv, env, work / "service.log") as service:
                    await asyncio.wait_for(heads.subscribed.wait(), timeout=30)
                    phase("waiting for the service's watcher to reach the head")
                    start_head = await heads.next()

                    async def caught_up() -> bool:
                        if service.returncode is not None:
                            raise RuntimeError(f"the service exited ({service.returncode})")
                        height = await db.fetchval(
                            "SELECT height FROM chain_cursor WHERE network = $1", NETWORK
                        )
                        return height is not None and height >= start_head

                    await _wait_for(caught_up, 120, "the watcher at the head")
                    phase(f"sending {count} deposits, {per_block} a block")
                    started = time.perf_counter()
                    await _send(rpc, heads, addresses, per_block)

                    async def all_credited() -> bool:
                        if service.returncode is not None:
                            raise RuntimeError(f"the service exited ({service.returncode})")
                        n = await ledger.fetchval("SELECT count(*) FROM refledger.credits")
                        return int(n) >= count

                    phase(f"waiting for the ledger to credit all {count}")
                    await _wait_for(all_credited, 120, f"{count} credits at the ledger")
                    seconds = time.perf_counter() - started
            finally:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                    await follower
            return await _collect(
                db, ledger, heads, count, per_block, network.poll_interval, confirmations, seconds
            )
        finally:
            await db.close()
            await ledger.close()


async def _send(rpc: BareRpc, heads: Heads, addresses: list[str], per_block: int) -> None:
    """``per_block`` deposits right after each head arrives: they go into the next block."""
    accounts = [a.lower() for a in await rpc.call("eth_accounts")][1:]
    nonces = {
        a: int(n, 16)
        for a, n in zip(
            accounts,
            await rpc.batch([("eth_getTransactionCount", [a, "pending"]) for a in accounts]),
            strict=True,
        )
    }
    for lo in range(0, len(addresses), per_block):
        await heads.next()
        calls: list[tuple[str, list[Any]]] = []
        for i, to in enumerate(addresses[lo : lo + per_block]):
            sender = accounts[i % len(accounts)]
            tx = {
                "from": sender,
                "to": to,
                "value": hex(DEPOSIT_WEI * (1 + (lo + i) % 9)),
                "gas": GAS,
                "maxFeePerGas": MAX_FEE,
                "maxPriorityFeePerGas": TIP,
                "nonce": hex(nonces[sender]),
            }
            nonces[sender] += 1
            calls.append(("eth_sendTransaction", [tx]))
        await rpc.batch(calls)


async def _collect(
    db: asyncpg.Connection,
    ledger: asyncpg.Connection,
    heads: Heads,
    count: int,
    per_block: int,
    poll_interval: float,
    confirmations: int,
    seconds: float,
) -> HeadToLedgerResult:
    rows = await db.fetch(
        """SELECT d.credit_key, d.block_number, d.required_confirmations,
                  extract(epoch FROM d.credited_at)::float8 AS credited,
                  extract(epoch FROM o.delivered_at)::float8 AS delivered
             FROM deposits d JOIN ledger_outbox o ON o.idempotency_key = d.credit_key
            WHERE d.network = $1 AND d.status = 'credited'""",
        NETWORK,
    )
    recorded = {
        r["credit_key"]: float(r["at"])
        for r in await ledger.fetch(
            "SELECT credit_key, extract(epoch FROM created_at)::float8 AS at FROM refledger.credits"
        )
    }
    if len(rows) != count or len(recorded) != count:
        raise RuntimeError(f"{len(rows)} deposits credited, {len(recorded)} at the ledger")
    to_ledger, to_watcher, to_delivered = [], [], []
    blocks = set()
    for r in rows:
        confirming = r["block_number"] + r["required_confirmations"] - 1
        blocks.add(r["block_number"])
        head_at = heads.arrived.get(confirming)
        if head_at is None:
            raise RuntimeError(f"head {confirming} was never seen arriving")
        to_ledger.append(recorded[r["credit_key"]] - head_at)
        to_watcher.append(float(r["credited"]) - head_at)
        to_delivered.append(float(r["delivered"]) - head_at)
    return HeadToLedgerResult(
        count=count,
        per_block=per_block,
        blocks=len(blocks),
        poll_interval=poll_interval,
        dispatcher_interval=DISPATCHER_INTERVAL,
        confirmations=confirmations,
        to_ledger=to_ledger,
        to_watcher=to_watcher,
        to_delivered=to_delivered,
        seconds=seconds,
    )


QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))


def head_to_ledger_rows(h: HeadToLedgerResult) -> list[list[str]]:
    spans = (
        ("confirming head -> watcher's credit (outbox row)", h.to_watcher),
        ("confirming head -> ledger records the credit", h.to_ledger),
        ("confirming head -> dispatcher records the answer", h.to_delivered),
    )
    return [[name] + [f"{quantile(v, q):.3f}" for _, q in QUANTILES] for name, v in spans]


def head_to_ledger_section(h: HeadToLedgerResult) -> list[str]:
    p99 = quantile(h.to_ledger, 0.99)
    verdict = "met" if p99 < h.goal else f"missed by {(p99 - h.goal) * 1000:.0f} ms"
    header = ["span (seconds)", *(name for name, _ in QUANTILES)]
    return [
        "## 9. Head to ledger (anvil --block-time 1)",
        "",
        f"{h.count} ETH deposits, {h.per_block} a block over {h.blocks} blocks, to distinct "
        "watched addresses, on anvil with `--block-time 1`; `chaingate run --roles "
        "watchers,dispatcher` and the reference ledger each in their own process. Watcher poll "
        f"interval {h.poll_interval} s, dispatcher idle interval {h.dispatcher_interval} s, "
        f"{h.confirmations} confirmations. The clock starts when the head that gives a deposit "
        "its last confirmation reaches this process over a `newHeads` websocket subscription "
        "(anvil's block timestamps are whole seconds) and stops at the ledger's record of the "
        "credit (`refledger.credits.created_at`, the start of the ledger's transaction). "
        f"Goal: p99 under one poll interval plus 250 ms = {h.goal:.2f} s: **{verdict}** "
        f"(p99 {p99:.3f} s).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in head_to_ledger_rows(h)),
        "",
    ]


def main() -> None:
    import argparse
    import tempfile

    from chaingate.logs import configure_logging
    from common import ADMIN_DSN

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--per-block", type=int, default=5)
    parser.add_argument("--poll", type=float, default=SWEEP_POLL, help="0: the devnet's own")
    args = parser.parse_args()
    configure_logging("console", "warning")
    with tempfile.TemporaryDirectory(prefix="cg-h2l-") as folder:
        poll = args.poll or None
        result = asyncio.run(
            run_head_to_ledger(Path(folder), ADMIN_DSN, args.count, args.per_block, poll)
        )
    print("\n".join(head_to_ledger_section(result)))


if __name__ == "__main__":
    main()
