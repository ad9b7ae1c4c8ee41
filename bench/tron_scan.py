"""Measurement: TRON block scanning on the project's TRON devnet, against the bare fetch.

The devnet (src/chaingate/devnet/tron_node) is filled with blocks of signed TRX transfers and
TRC-20 (the devnet's USDT) ``transfer`` calls, half of them paying one of the watched
addresses. Both passes go through the network's EndpointPool over the same blocks, range by
range as the watcher asks (the network's ``scan_batch`` blocks a range), one range after
another:

- baseline: the HTTP calls the adapter needs and nothing else, in the same order:
  ``/wallet/getblockbylimitnext`` in chunks of ``BLOCK_RANGE_LIMIT`` blocks, then
  ``/wallet/gettransactioninfobyblocknum`` for each block holding a contract call (read from the
  JSON ``raw_data``); answers decoded and counted, nothing checked;
- adapter: ``TronAdapter.scan`` over the same ranges, with issue 8's checks on (each blockID
  recomputed from its header, each txID from its ``raw_data_hex``, the raw bytes decoded and
  read instead of the JSON, parent links, tx infos belonging to their block) and the match of
  every recipient against the watched set (raw 21-byte addresses, as the AddressBook holds them).

Each pass runs ``repeats`` times; the median is reported (as for Bitcoin, section 4).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from coincurve import PrivateKey

from btc_scan import BtcPass as ScanPass
from btc_scan import bench_network
from chaingate.chains.registry import build_adapter, open_pool
from chaingate.chains.tron.addresses import raw_from_public_point, to_base58
from chaingate.chains.tron.rpc import BLOCK_RANGE_LIMIT
from chaingate.chains.tron.txbuilder import Reference, TronTransfer, broadcast_body, build
from chaingate.devnet.tron_node import GENESIS_KEYS
from chaingate.domain import Network
from chaingate.providers import EndpointPool
from common import devnet, measure_memory, timed
from progress import phase

NETWORK = "tron-devnet"
RECIPIENTS = 2_000  # distinct watched recipients, and as many unwatched ones
IN_FLIGHT = 8  # broadcasts in flight while filling (not measured)
TRC20_FEE_LIMIT = 20_000_000  # sun: a transfer to a new holder burns ~12.4 TRX of energy


@dataclasses.dataclass(frozen=True)
class TronParams:
    blocks: int
    per_block: int
    watched: int
    repeats: int


@dataclasses.dataclass
class FilledTron:
    first: int
    last: int
    transactions: int
    trc20: int
    to_watched: int

    @property
    def blocks(self) -> int:
        return self.last - self.first + 1


@dataclasses.dataclass
class TronResult:
    params: TronParams
    filled: FilledTron
    fill_seconds: float
    passes: list[ScanPass]


# --- filling (not measured) ---------------------------------------------------------------------
class _Sender:
    def __init__(self, secret_hex: str) -> None:
        self.key = PrivateKey(bytes.fromhex(secret_hex))
        self.address = to_base58(raw_from_public_point(self.key.public_key.format(False)[1:]))

    def signed(self, transfer: TronTransfer) -> dict[str, Any]:
        built = build(transfer)
        digest = hashlib.sha256(built.raw_bytes).digest()
        signature = self.key.sign_recoverable(digest, hasher=None).hex()
        return broadcast_body(built.raw_data, built.raw_bytes, signature)


class TronFiller:
    """Broadcasts ``per_block`` signed transfers (TRX and USDT alternately), then mines."""

    def __init__(
        self, url: str, usdt: str, watched: Sequence[bytes], session: aiohttp.ClientSession
    ) -> None:
        self.url = url
        self.usdt = usdt
        self.session = session
        self.rng = random.Random(31)
        self.watched = [to_base58(raw) for raw in watched[:RECIPIENTS]]
        self.unwatched = [
            to_base58(b"\x41" + self.rng.randbytes(20)) for _ in range(len(self.watched))
        ]
        # The USDT holder (genesis key 0) pays the TRC-20 transfers, the others the TRX ones.
        self.token_sender = _Sender(GENESIS_KEYS[0])
        self.trx_senders = [_Sender(k) for k in GENESIS_KEYS[1:]]
        self.amounts = iter(range(1_000_000, 10**12))  # distinct amounts: no duplicate txID

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        async with self.session.post(f"{self.url}/{path}", json=body) as resp:
            resp.raise_for_status()
            return await resp.json(content_type=None)

    async def _reference(self) -> Reference:
        block = await self._post("wallet/getnowblock", {})
        header = block["block_header"]["raw_data"]
        number, stamp = int(header.get("number", 0)), int(header.get("timestamp", 0))
        return Reference(number, block["blockID"], stamp)

    def _transfers(
        self, per_block: int, reference: Reference
    ) -> Iterator[tuple[dict[str, Any], bool, bool]]:
        now = int(time.time() * 1000)
        for i in range(per_block):
            hit = self.rng.random() < 0.5
            to = self.rng.choice(self.watched if hit else self.unwatched)
            token = i % 2 == 1
            sender = self.token_sender if token else self.trx_senders[i % len(self.trx_senders)]
            transfer = TronTransfer(
                owner=sender.address,
                to=to,
                amount=next(self.amounts),
                contract=self.usdt if token else None,
                fee_limit=TRC20_FEE_LIMIT if token else 0,
                reference=reference,
                timestamp=now,
                expiration=now + 3_600_000,
            )
            yield sender.signed(transfer), hit, token

    async def fill(self, blocks: int, per_block: int) -> FilledTron:
        first = last = -1
        txs = trc20 = hits = 0
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def send(body: dict[str, Any]) -> None:
            async with gate:
                answer = await self._post("wallet/broadcasttransaction", body)
            if answer.get("result") is not True:
                raise RuntimeError(f"devnet refused a transfer: {answer}")

        for _ in range(blocks):
            batch = list(self._transfers(per_block, await self._reference()))
            await asyncio.gather(*(send(body) for body, _, _ in batch))
            last = int((await self._post("devnet/mine", {"count": 1}))["head"])
            block = await self._post("wallet/getblockbynum", {"num": last})
            if len(block.get("transactions", [])) != per_block:
                raise RuntimeError(f"block {last} holds {len(block.get('transactions', []))} txs")
            first = last if first < 0 else first
            txs += per_block
            trc20 += sum(1 for _, _, token in batch if token)
            hits += sum(1 for _, hit, _ in batch if hit)
        return FilledTron(first, last, txs, trc20, hits)


# --- the passes ---------------------------------------------------------------------------------
def _ranges(first: int, last: int, size: int) -> Iterator[tuple[int, int]]:
    for lo in range(first, last + 1, size):
        yield lo, min(last, lo + size - 1)


def _has_call(block: dict[str, Any]) -> bool:
    return any(
        tx["raw_data"]["contract"][0]["type"] == "TriggerSmartContract"
        for tx in block.get("transactions", [])
    )


async def _bare_range(pool: EndpointPool, start: int, end: int) -> int:
    """The calls ``TronAdapter.scan(start, end)`` makes, in its order; transactions seen."""
    blocks: list[dict[str, Any]] = []
    for lo in range(start, end + 1, BLOCK_RANGE_LIMIT):
        hi = min(end + 1, lo + BLOCK_RANGE_LIMIT)
        reply = await pool.post("/wallet/getblockbylimitnext", {"startNum": lo, "endNum": hi})
        blocks.extend(reply.get("block", []))
    if len(blocks) != end - start + 1:
        raise RuntimeError(f"bare fetch got {len(blocks)} of blocks {start}..{end}")
    for block in blocks:
        if _has_call(block):
            number = block["block_header"]["raw_data"]["number"]
            await pool.post("/wallet/gettransactioninfobyblocknum", {"num": number})
    return sum(len(b.get("transactions", [])) for b in blocks)


async def baseline_pass(network: Network, filled: FilledTron, repeats: int) -> ScanPass:
    times, txs = [], 0
    async with open_pool(network) as pool:
        with measure_memory() as memory:
            for _ in range(repeats):
                txs = 0
                with timed() as clock:
                    for lo, hi in _ranges(filled.first, filled.last, network.scan_batch):
                        txs += await _bare_range(pool, lo, hi)
                times.append(clock.seconds)
    name = "bare getblockbylimitnext + gettransactioninfobyblocknum (baseline)"
    return ScanPass(name, times, txs, 0, memory)


async def adapter_pass(
    network: Network, filled: FilledTron, watched: frozenset[bytes], repeats: int
) -> ScanPass:
    times, found = [], 0
    async with open_pool(network) as pool:
        adapter = build_adapter(network, pool)
        with measure_memory() as memory:
            for _ in range(repeats):
                found = 0
                with timed() as clock:
                    for lo, hi in _ranges(filled.first, filled.last, network.scan_batch):
                        found += len((await adapter.scan(lo, hi, watched)).transfers)
                times.append(clock.seconds)
    return ScanPass("TronAdapter.scan", times, filled.transactions, found, memory)


async def run_tron(tmp: Path, params: TronParams) -> TronResult:
    rng = random.Random(88)
    watched_raw = [b"\x41" + rng.randbytes(20) for _ in range(params.watched)]
    watched = frozenset(watched_raw)  # raw addresses, as the AddressBook holds them
    async with devnet(tmp, "tron", ["tron"]) as state:
        assert state.tron_url, "the TRON devnet did not come up"
        network = bench_network(state.tron_url, NETWORK)
        usdt = next(a.contract for a in network.assets if a.symbol == "USDT")
        assert usdt is not None
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            filler = TronFiller(state.tron_url, usdt, watched_raw, session)
            phase(f"filling {params.blocks} blocks x {params.per_block} transfers")
            with timed() as fill_clock:
                filled = await filler.fill(params.blocks, params.per_block)
        phase(f"baseline: bare fetch, {params.repeats} repeat(s) (1 of 2 passes)")
        baseline = await baseline_pass(network, filled, params.repeats)
        phase(f"adapter scan, {params.repeats} repeat(s) (2 of 2)")
        passes = [baseline, await adapter_pass(network, filled, watched, params.repeats)]
    if passes[1].found != filled.to_watched:
        raise RuntimeError(f"scan found {passes[1].found} of {filled.to_watched} payments")
    return TronResult(params, filled, fill_clock.seconds, passes)
