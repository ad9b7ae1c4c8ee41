"""Measurement 1: EVM catch-up on anvil, against the bare fetch of what the watcher must read.

Two shapes (``EvmParams.label``): "dense" (2,000 blocks x 50 transfers, half of them to the
100,000 watched addresses: every block holds deposits) and "mainnet-like" (150 transactions per
block, about one deposit per 10 blocks, 1,000,000 watched addresses). Passes over the same
filled range, all through the network's EndpointPool:

- baseline (SPEC section 13): everything the watcher must read, batched, several batches in
  flight: per 20 blocks one batch of eth_getBlockByNumber(full) and one eth_getLogs(Transfer
  topic) together, then one batch of eth_getBlockReceipts for the blocks holding a candidate
  (a transaction or Transfer log to a watched address), 4 chunks in flight; answers decoded,
  nothing else. It runs before and after the others and the faster run counts;
- adapter (dense only): ``EvmAdapter.scan`` alone (fetch, checks, decoding, receipts of
  candidate blocks), probing an AddressBook loaded with every watched address;
- watcher: ``Watcher.step()`` until caught up, every check on: scan (pipelined, ranges sized
  to the endpoint), deposits, block hashes and cursor written in one transaction per range,
  confirmations counted and credits queued in the outbox.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from chaingate.chains.evm.addresses import EvmAddresses
from chaingate.chains.registry import build_adapter, open_pool
from chaingate.domain import Asset, Network
from chaingate.providers import EndpointPool
from chaingate.registry import load_network
from chaingate.settings import PROJECT_ROOT
from chaingate.store import connect_pool
from chaingate.watcher import Watcher
from chaingate.watcher.addressbook import AddressBook
from common import BareRpc, Memory, devnet, lease_renewed, measure_memory, rate, timed
from evm_fill import RECIPIENTS, FilledRange, Filler, fresh_address
from progress import phase as bench_phase

T = TypeVar("T")
NETWORK = "ethereum-devnet"
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


BARE_CHUNK = 20  # blocks per baseline batch, as ../shared/peers/bare_fetch.py
BARE_IN_FLIGHT = 4


@dataclasses.dataclass(frozen=True)
class EvmParams:
    blocks: int
    per_block: int
    watched: int
    watched_share: float = 0.5
    label: str = "dense"
    goal: float = 1.25  # the goal for the watcher against the baseline
    adapter_pass: bool = True
    rss_goal_mib: float | None = None  # peak RSS the watcher pass should stay under


def mainnet_like(blocks: int, watched: int) -> EvmParams:
    """150 transactions per block, about one deposit per 10 blocks."""
    return EvmParams(
        blocks,
        150,
        watched,
        watched_share=1 / 1500,
        label="mainnet-like",
        goal=1.1,
        adapter_pass=False,
        rss_goal_mib=300,
    )


@dataclasses.dataclass
class Pass:
    name: str
    seconds: float
    blocks: int
    transfers: int  # what the pass found: transactions + logs fetched, or deposits
    memory: Memory
    note: str = ""
    split: dict[str, float] = dataclasses.field(default_factory=dict)  # seconds per phase

    @property
    def blocks_per_s(self) -> float:
        return rate(self.blocks, self.seconds)


@dataclasses.dataclass
class EvmResult:
    params: EvmParams
    filled: FilledRange
    fill_seconds: float
    address_load_seconds: float
    passes: list[Pass]
    deposits: int
    credits_queued: int

    def pass_named(self, name: str) -> Pass:
        return next(p for p in self.passes if p.name == name)


def bench_network(url: str, token: str, start: int) -> Network:
    """ethereum-devnet as chains/devnet describes it, pointed at our anvil.

    Tracing is off (as on the mainnet config, where most plans serve no debug_trace*): the
    measurement is the scan every endpoint supports. The endpoint's timeout is 30 s, not the
    devnet's 5 s: on a shared 2-core machine a batch of 100 full blocks can take longer, and the
    one-range-after-another adapter pass would fail rather than measure.
    """
    network = load_network(PROJECT_ROOT / "chains" / "devnet" / f"{NETWORK}.toml", {})
    endpoint = dataclasses.replace(network.endpoints[0], url=url, timeout=30.0)
    assets = tuple(_with_token(a, token) for a in network.assets)
    return dataclasses.replace(
        network, endpoints=(endpoint,), assets=assets, tracing=False, start_height=start
    )


def _with_token(asset: Asset, token: str) -> Asset:
    return dataclasses.replace(asset, contract=token.lower()) if asset.contract else asset


async def insert_addresses(conn: asyncpg.Connection, network: str, keys: Iterable[str]) -> None:
    """Bulk COPY of deposit addresses (as if issued to users 0..n-1 at indexes 0..n-1)."""
    records = ((network, f"u{i}", i, key, key) for i, key in enumerate(keys))
    await conn.copy_records_to_table(
        "deposit_addresses",
        records=records,
        columns=["network", "user_id", "derivation_index", "address", "match_key"],
        # None would mean the connection's command_timeout (60 s): a million rows on a loaded
        # machine outlast it.
        timeout=3600,
    )


def _watched_keys(used: list[str], total: int, rng: random.Random) -> Iterator[str]:
    """The ``used`` addresses, then fresh ones up to ``total``, made as COPY reads them (a
    million keys held here would count against the watcher's RSS)."""
    yield from used
    for _ in range(total - len(used)):
        yield fresh_address(rng)


def _chunks(first: int, last: int, size: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + size - 1, last)) for lo in range(first, last + 1, size)]


async def _bare_chunk(
    pool: EndpointPool, lo: int, hi: int, watched: set[str], token: str
) -> tuple[int, int, int]:
    calls = [("eth_getBlockByNumber", [hex(n), True]) for n in range(lo, hi + 1)]
    query = {"fromBlock": hex(lo), "toBlock": hex(hi), "topics": [TRANSFER_TOPIC]}
    blocks, logs = await asyncio.gather(pool.batch(calls), pool.request("eth_getLogs", [query]))
    wanted = {
        int(log["blockNumber"], 16)
        for log in logs
        if len(log["topics"]) > 2 and "0x" + log["topics"][2][-40:] in watched
    }
    for block in blocks:
        for tx in block["transactions"]:
            to = (tx["to"] or "").lower()
            if to in watched or (to == token and "0x" + tx["input"][34:74] in watched):
                wanted.add(int(block["number"], 16))
                break
    receipts = await pool.batch([("eth_getBlockReceipts", [hex(n)]) for n in sorted(wanted)])
    return sum(len(b["transactions"]) for b in blocks), len(logs), len(receipts)


async def baseline_pass(network: Network, filled: FilledRange, watched: set[str]) -> Pass:
    token = next(a.contract for a in network.assets if a.contract is not None).lower()
    gate = asyncio.Semaphore(BARE_IN_FLIGHT)

    async def chunk(lo: int, hi: int) -> tuple[int, int, int]:
        async with gate:
            return await _bare_chunk(pool, lo, hi, watched, token)

    async with open_pool(network) as pool:
        with measure_memory() as memory, timed() as clock:
            parts = await asyncio.gather(
                *(chunk(lo, hi) for lo, hi in _chunks(filled.first, filled.last, BARE_CHUNK))
            )
    txs, logs, receipts = (sum(part[i] for part in parts) for i in range(3))
    note = (
        f"{txs} transactions, {logs} Transfer logs and the receipts of {receipts} candidate "
        f"blocks fetched ({BARE_CHUNK} blocks a batch, {BARE_IN_FLIGHT} in flight)"
    )
    return Pass("bare fetch (baseline)", clock.seconds, filled.blocks, txs, memory, note)


async def adapter_pass(network: Network, filled: FilledRange, book: AddressBook) -> Pass:
    found = 0
    async with open_pool(network) as pool:
        adapter = build_adapter(network, pool)
        with measure_memory() as memory, timed() as clock:
            for lo, hi in _chunks(filled.first, filled.last, network.scan_batch):
                found += len((await adapter.scan(lo, hi, book.keys)).transfers)
    return Pass("EvmAdapter.scan", clock.seconds, filled.blocks, found, memory)


def _clocked(
    split: dict[str, float], phase: str, method: Callable[..., Awaitable[T]]
) -> Callable[..., Awaitable[T]]:
    async def wrapper(*args: Any, **kwargs: Any) -> T:
        started = time.perf_counter()
        try:
            return await method(*args, **kwargs)
        finally:
            split[phase] = split.get(phase, 0.0) + time.perf_counter() - started

    return wrapper


def _instrument(watcher: Watcher) -> dict[str, float]:
    """Time the watcher's phases by wrapping them on this one instance (the watcher offers no
    such timings itself; its code runs unchanged)."""
    split: dict[str, float] = {}
    for target, attribute, phase in (
        (watcher.adapter, "scan", "scan"),
        (watcher, "_store_range", "store"),
        (watcher, "_credit", "credit"),
    ):
        setattr(target, attribute, _clocked(split, phase, getattr(target, attribute)))
    return split


async def watcher_pass(
    network: Network, filled: FilledRange, db: asyncpg.Pool
) -> tuple[Pass, float]:
    """The pass, and the seconds of the watcher's startup load of its AddressBook (before the
    clock starts, as at a watcher's start)."""
    async with open_pool(network) as pool:
        watcher = Watcher(build_adapter(network, pool), db)
        async with db.acquire() as conn:
            with timed() as load_clock:
                await watcher.book.refresh(conn)
        split = _instrument(watcher)
        found = 0
        with measure_memory() as memory, timed() as clock:
            async with lease_renewed(watcher.leadership):
                result = await watcher.step()
                found += result.transfers
                while not result.caught_up:
                    result = await watcher.step()
                    found += result.transfers
    # The watcher scans the next range while it stores and credits this one, so the phases can
    # add up to more than the wall time; "rest" is what no phase covers.
    split["rest"] = max(0.0, clock.seconds - sum(split.values()))
    name = "Watcher.step (scan + store + credit)"
    return Pass(name, clock.seconds, filled.blocks, found, memory, split=split), load_clock.seconds


async def run_evm(tmp: Path, db_dsn: str, params: EvmParams) -> EvmResult:
    rng = random.Random(2024)
    used = [fresh_address(rng) for _ in range(min(params.watched, RECIPIENTS))]
    async with devnet(tmp, "evm", ["eth"]) as state:
        assert state.eth_url and state.eth_token, "the eth devnet did not come up"
        async with BareRpc(state.eth_url) as rpc:
            filler = Filler(rpc, state.eth_token, used)
            bench_phase(
                f"{params.label}: filling {params.blocks} blocks x {params.per_block} transfers"
            )
            await filler.prepare()
            with timed() as fill_clock:
                filled = await filler.fill(params.blocks, params.per_block, params.watched_share)
        network = bench_network(state.eth_url, state.eth_token, filled.first)
        db = await connect_pool(db_dsn, max_size=4)
        try:
            async with db.acquire() as conn:
                keys = _watched_keys(used, params.watched, rng)
                await insert_addresses(conn, network.name, keys)
                await conn.execute("ANALYZE deposit_addresses")
            # Only these can appear on chain: the baseline's candidate test needs no more.
            watched = set(used)
            bench_phase(f"{params.label}: baseline, bare fetch of {params.blocks} blocks")
            before = await baseline_pass(network, filled, watched)
            passes = []
            if params.adapter_pass:
                book = AddressBook(network, EvmAddresses(network).raw_key)
                async with db.acquire() as conn:
                    await book.refresh(conn)
                bench_phase(f"{params.label}: adapter scan of {params.blocks} blocks")
                passes.append(await adapter_pass(network, filled, book))
                del book  # the watcher loads its own
            bench_phase(f"{params.label}: watcher catch-up over {params.blocks} blocks")
            watch, load_seconds = await watcher_pass(network, filled, db)
            passes.append(watch)
            bench_phase(f"{params.label}: baseline again")
            after = await baseline_pass(network, filled, watched)
            passes.insert(0, _best(before, after))
            deposits, credits = await _outcome(db, network.name)
        finally:
            await db.close()
    return EvmResult(params, filled, fill_clock.seconds, load_seconds, passes, deposits, credits)


def _best(first: Pass, second: Pass) -> Pass:
    """The faster baseline of the runs before and after the measured passes (a cold node or
    a busy moment then counts against chaingate, not for it)."""
    best = first if first.seconds <= second.seconds else second
    best.note += f"; best of {first.seconds:.2f} s before and {second.seconds:.2f} s after"
    return best


async def _outcome(db: asyncpg.Pool, network: str) -> tuple[int, int]:
    row: Any = await db.fetchrow(
        """SELECT (SELECT count(*) FROM deposits WHERE network = $1) AS deposits,
                  (SELECT count(*) FROM ledger_outbox WHERE kind = 'credit') AS credits""",
        network,
    )
    return int(row["deposits"]), int(row["credits"])
