"""Catch-up pipelining (issue 9): several ranges are read ahead of the cursor, their size adapts
to the endpoint, and none of it changes what is written: a failure in range k+1 never moves the
cursor past k, and a step cancelled with ranges in flight leaves nothing running and repeats
nothing. At the head, the watcher reads the head every poll interval, however long its steps
take."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from chaindrivers.evm import E18 as ETH
from chaindrivers.evm import SENDER, head
from chaingate.devnet import evm_contracts as evm
from chaingate.devnet.manager import DevnetState
from chaingate.domain import ScanResult
from chaingate.errors import ProviderError
from chaingate.store import chainstate
from chaingate.watcher import StepResult, Watcher
from chaingate.watcher.pipeline import DEPTH, RangeSizer, ScanPipeline
from faultproxy import FaultProxy
from harness import INSTANCE, Gateway, devnet_network, gateway, until


@pytest.fixture
async def proxied(
    devnet: DevnetState, db: Any, ledger_url: str
) -> AsyncIterator[tuple[Gateway, FaultProxy]]:
    url = devnet.eth_url or ""
    proxy = FaultProxy(url)
    await proxy.start()
    network = devnet_network(
        "ethereum-devnet", proxy.url, start_height=await head(url) + 1, scan_batch=2
    )
    try:
        async with gateway(network, db, ledger_url) as gw:
            yield gw, proxy
    finally:
        await proxy.stop()


async def cursor(gw: Gateway) -> int:
    async with gw.db.acquire() as conn:
        value = await chainstate.get_cursor(conn, gw.network.name)
    assert value is not None
    return value


async def paid_blocks(gw: Gateway, url: str, user: str, count: int) -> tuple[int, list[int]]:
    """The cursor, then ``count`` blocks after it, each paying ``user`` i + 1 wei over 1 ETH."""
    address = await gw.address(user)
    await gw.sync()
    start = await cursor(gw)
    for i in range(count):
        await evm.send_eth(url, SENDER, address, ETH + i + 1)  # one block each (automine)
    return start, [ETH + i + 1 for i in range(count)]


# --- the range size --------------------------------------------------------------------------
def test_the_range_grows_while_fast_and_halves_when_refused_or_slow() -> None:
    sizer = RangeSizer(ceiling=100, timeout=8.0, start=10)
    sizer.answered(10, 0.5)  # well within a quarter of the timeout
    assert sizer.size == 20
    sizer.answered(5, 0.1)  # a short range (near the head) is no evidence for a bigger one
    assert sizer.size == 20
    for _ in range(5):
        sizer.answered(sizer.size, 0.5)
    assert sizer.size == 100  # never above the ceiling
    sizer.refused()
    assert sizer.size == 50
    sizer.answered(50, 7.0)  # over three quarters of the timeout: close to timing out
    assert sizer.size == 25
    sizer.answered(25, 5.0)  # between a quarter and three quarters: kept
    assert sizer.size == 25
    for _ in range(10):
        sizer.refused()
    assert sizer.size == 1  # never below one block


def test_the_ceiling_is_the_smaller_of_scan_batch_and_the_endpoints_log_range(
    devnet: DevnetState,
) -> None:
    network = devnet_network("ethereum-devnet", "http://127.0.0.1:1", scan_batch=500)
    capped = dataclasses.replace(
        network, endpoints=(dataclasses.replace(network.endpoints[0], max_log_range=40),)
    )
    assert RangeSizer.for_network(network).ceiling == 500
    assert RangeSizer.for_network(capped).ceiling == 40
    assert RangeSizer.for_network(capped).size == 10  # a quarter of it first, then doubling


# --- failures and cancellation inside the pipeline ---------------------------------------------
async def test_a_failure_in_the_next_range_never_moves_the_cursor_past_the_stored_one(
    proxied: tuple[Gateway, FaultProxy], devnet: DevnetState
) -> None:
    gw, proxy = proxied
    url = devnet.eth_url or ""
    start, amounts = await paid_blocks(gw, url, "pia", 2 + 2 * DEPTH)
    # Ranges of 2: k = start+1..start+2 is stored; k+1 = start+3..start+4 fails.
    proxy.faults = dataclasses.replace(proxy.faults, failing_blocks=frozenset({start + 4}))
    first = await gw.watcher.step()
    assert (first.scanned, await cursor(gw)) == (2, start + 2)
    assert gw.watcher.pipeline.in_flight == DEPTH  # several ranges ahead, not one prefetch
    with pytest.raises(ProviderError):
        await gw.watcher.step()
    assert await cursor(gw) == start + 2  # never past range k
    assert gw.watcher.pipeline.in_flight == 0  # everything read ahead was dropped
    assert gw.watcher.pipeline.sizer.size == 1  # the refusal halved the range
    # The smaller range before the failing block goes through; the failing one stops there.
    assert (await gw.watcher.step()).cursor == start + 3
    with pytest.raises(ProviderError):
        await gw.watcher.step()
    assert await cursor(gw) == start + 3
    proxy.reset()
    await evm.mine(url, gw.network.confirmations)  # the last payments' confirmations
    await gw.sync()
    await gw.deliver()
    rows = await gw.deposits("pia")
    assert sorted(int(r["amount"]) for r in rows) == amounts  # none skipped, none twice
    assert {r["status"] for r in rows} == {"credited"}
    assert sorted(int(c["amount"]) for c in await gw.credits("pia")) == amounts


async def test_a_step_cancelled_with_ranges_in_flight_leaves_nothing_running_and_repeats_nothing(
    proxied: tuple[Gateway, FaultProxy], devnet: DevnetState
) -> None:
    gw, proxy = proxied
    url = devnet.eth_url or ""
    start, amounts = await paid_blocks(gw, url, "quin", 8)
    await gw.watcher.step()  # one range stored, the next ones in flight
    proxy.reset()
    proxy.faults = dataclasses.replace(proxy.faults, delay=1.0)
    step = asyncio.create_task(gw.watcher.step())

    async def inside_the_step() -> bool:  # its head read is held up, ranges are in flight
        return proxy.seen.methods["eth_blockNumber"] > 0 and gw.watcher.pipeline.in_flight > 0

    await until(inside_the_step)
    flights = list(gw.watcher.pipeline._ahead)
    step.cancel()
    with pytest.raises(asyncio.CancelledError):
        await step
    assert gw.watcher.pipeline.in_flight == 0
    await asyncio.sleep(0)  # let the cancellations land
    assert all(f.task.done() for f in flights)
    moved = await cursor(gw)
    assert start + 2 <= moved <= start + 4  # whole ranges only

    # A crash: a new watcher (a restarted process) picks up from the database alone.
    proxy.reset()
    await evm.mine(url, gw.network.confirmations)
    gw.watcher = Watcher(gw.watcher.adapter, gw.db, holder=INSTANCE)
    await gw.sync()
    while await gw.deliver():
        pass
    rows = await gw.deposits("quin")
    assert sorted(int(r["amount"]) for r in rows) == amounts
    assert {r["status"] for r in rows} == {"credited"}
    outbox = await gw.db.fetchval(
        "SELECT count(*) FROM ledger_outbox WHERE payload->>'user_id' = 'quin'"
    )
    assert outbox == len(amounts)  # one credit message per deposit, none repeated
    assert sorted(int(c["amount"]) for c in await gw.credits("quin")) == amounts


# --- at the head ------------------------------------------------------------------------------
async def test_at_the_head_the_watcher_reads_every_poll_interval_whatever_its_steps_take(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Head-to-ledger latency (issue 9): a block found just after a head read waits one poll
    interval for the next read, not the step's own time on top of it. Steps of 0.3 s at a
    0.5 s interval start 0.5 s apart (0.8 s when the wait followed the step)."""
    network = devnet_network("ethereum-devnet", "http://127.0.0.1:9", poll_interval=0.5)
    adapter = SimpleNamespace(network=network, addresses=SimpleNamespace(raw_key=bytes.fromhex))
    watcher = Watcher(adapter, db, holder=INSTANCE)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    starts: list[float] = []
    stop = asyncio.Event()

    async def caught_up_step(seconds: float) -> StepResult:
        starts.append(loop.time())
        await asyncio.sleep(seconds)
        if len(starts) == 5:
            stop.set()
        return StepResult(head=10, cursor=10)

    monkeypatch.setattr(watcher, "step", lambda: caught_up_step(0.3))
    await asyncio.wait_for(watcher._steps(stop), timeout=20)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(0.49 <= gap < 0.68 for gap in gaps), gaps

    # A step slower than the interval is followed by a short pause, never by none.
    starts.clear()
    stop.clear()
    monkeypatch.setattr(watcher, "step", lambda: caught_up_step(0.7))
    await asyncio.wait_for(watcher._steps(stop), timeout=20)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(0.79 <= gap < 1.0 for gap in gaps), gaps


async def test_a_range_that_lands_starts_the_next_read_while_the_watcher_is_busy() -> None:
    """The node is kept busy while the watcher stores: a landed range starts the next read at
    once (never more than ``depth`` reading), and at most ``buffered`` ranges wait for it."""
    reads: list[tuple[int, int]] = []
    gates: dict[int, asyncio.Event] = {}

    async def scan(start: int, end: int) -> ScanResult:
        reads.append((start, end))
        gate = gates.setdefault(start, asyncio.Event())
        await gate.wait()
        return ScanResult(blocks=(), transfers=())

    pipeline = ScanPipeline(
        scan, RangeSizer(ceiling=10, timeout=60.0, start=10), depth=2, buffered=3
    )
    first = asyncio.create_task(pipeline.next(0, 1_000))
    await settle()
    assert reads == [(1, 10), (11, 20)]  # depth ranges reading
    gates.setdefault(1, asyncio.Event()).set()
    assert (await first)[0] == 10
    await settle()
    assert reads[-1] == (21, 30)  # next() refilled to depth
    # the watcher is now busy storing; a range lands meanwhile and starts the next read
    gates.setdefault(11, asyncio.Event()).set()
    await settle()
    assert reads[-1] == (31, 40) and pipeline.in_flight == 3
    # two more land: three ranges wait for the watcher (buffered), so nothing more is read
    gates.setdefault(21, asyncio.Event()).set()
    gates.setdefault(31, asyncio.Event()).set()
    await settle()
    assert len(reads) == 4 and pipeline.in_flight == 3
    assert (await pipeline.next(10, 1_000))[0] == 20  # the watcher is back: reading resumes
    await settle()
    assert reads[-1] == (41, 50)
    pipeline.drop()


async def settle() -> None:
    """Let every task that can run, run (a few loop turns)."""
    for _ in range(10):
        await asyncio.sleep(0)
