"""Measurement 4: Bitcoin block scanning on litecoind regtest, against the bare fetch.

Both passes go through the network's EndpointPool over the same filled blocks:

- baseline: batched getblockhash for the range, then batched getblock(hash, 2) in chunks of
  the adapter's BLOCKS_PER_BATCH, answers decoded (JSON with exact decimals) and counted;
- adapter: ``BitcoinAdapter.scan`` over the same range: the same fetch plus its checks (header
  hash, merkle root, parent links) and the match of every output against the watched scripts.

Each pass runs ``repeats`` times; the median is reported (a 20,000-transaction range takes
only seconds, so one run would be noisy).
"""

from __future__ import annotations

import dataclasses
import random
import statistics
from pathlib import Path

from btc_fill import BitcoinFiller, FilledBlocks, p2wpkh
from chaingate.chains.bitcoin.adapter import BLOCKS_PER_BATCH
from chaingate.chains.registry import build_adapter, open_pool
from chaingate.domain import Network
from chaingate.providers import EndpointPool
from chaingate.registry import load_network
from chaingate.settings import PROJECT_ROOT
from common import BareRpc, Memory, devnet, measure_memory, rate, timed
from progress import phase

NETWORK = "bitcoin-devnet"


@dataclasses.dataclass(frozen=True)
class BtcParams:
    blocks: int
    per_block: int
    watched: int
    repeats: int


@dataclasses.dataclass
class BtcPass:
    name: str
    seconds: list[float]
    transactions: int
    found: int
    memory: Memory

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def tx_per_s(self) -> float:
        return rate(self.transactions, self.median)


@dataclasses.dataclass
class BtcResult:
    params: BtcParams
    filled: FilledBlocks
    fill_seconds: float
    passes: list[BtcPass]


def bench_network(url: str, name: str = NETWORK) -> Network:
    """The devnet network ``name`` as its registry file says, served at ``url``, patiently."""
    network = load_network(PROJECT_ROOT / "chains" / "devnet" / f"{name}.toml", {})
    endpoint = dataclasses.replace(network.endpoints[0], url=url, timeout=60.0)
    return dataclasses.replace(network, endpoints=(endpoint,))


async def _bare(pool: EndpointPool, first: int, last: int) -> int:
    hashes = await pool.batch([("getblockhash", [h]) for h in range(first, last + 1)])
    txs = 0
    for lo in range(0, len(hashes), BLOCKS_PER_BATCH):
        chunk = hashes[lo : lo + BLOCKS_PER_BATCH]
        blocks = await pool.batch([("getblock", [h, 2]) for h in chunk])
        txs += sum(len(b["tx"]) for b in blocks)
    return txs


async def baseline_pass(network: Network, filled: FilledBlocks, repeats: int) -> BtcPass:
    times, txs = [], 0
    async with open_pool(network) as pool:
        with measure_memory() as memory:
            for _ in range(repeats):
                with timed() as clock:
                    txs = await _bare(pool, filled.first, filled.last)
                times.append(clock.seconds)
    return BtcPass("bare getblock(hash, 2) (baseline)", times, txs, 0, memory)


async def adapter_pass(
    network: Network, filled: FilledBlocks, watched: frozenset[bytes], repeats: int
) -> BtcPass:
    times, found = [], 0
    async with open_pool(network) as pool:
        adapter = build_adapter(network, pool)
        with measure_memory() as memory:
            for _ in range(repeats):
                with timed() as clock:
                    result = await adapter.scan(filled.first, filled.last, watched)
                times.append(clock.seconds)
                found = len(result.transfers)
    return BtcPass("BitcoinAdapter.scan", times, filled.transactions, found, memory)


async def run_bitcoin(tmp: Path, params: BtcParams) -> BtcResult:
    rng = random.Random(77)
    scripts = [p2wpkh(rng.randbytes(20)) for _ in range(params.watched)]
    watched = frozenset(scripts)  # raw scripts, as the AddressBook holds them
    async with devnet(tmp, "btc", ["litecoind"]) as state:
        assert state.ltc_rpc_url and state.ltc_wallet, "litecoind did not come up"
        async with BareRpc(state.ltc_rpc_url, version="1.0") as rpc:
            filler = BitcoinFiller(rpc, state.ltc_wallet, scripts)
            phase(f"filling {params.blocks} blocks x {params.per_block} payments")
            with timed() as fill_clock:
                filled = await filler.fill(params.blocks, params.per_block)
        network = bench_network(state.ltc_rpc_url)
        phase(f"baseline: bare fetch, {params.repeats} repeat(s) (1 of 2 passes)")
        baseline = await baseline_pass(network, filled, params.repeats)
        phase(f"adapter scan, {params.repeats} repeat(s) (2 of 2)")
        passes = [baseline, await adapter_pass(network, filled, watched, params.repeats)]
    if passes[1].found < filled.to_watched:
        raise RuntimeError(f"scan found {passes[1].found} of {filled.to_watched} payments")
    return BtcResult(params, filled, fill_clock.seconds, passes)
