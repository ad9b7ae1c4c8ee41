"""Only the current leader of a network writes for it (SPEC section 5, issue 8 item 7).

Two watchers on one network against real anvil and PostgreSQL. A deposed leader that finishes a
stale rollback must reverse nothing: the lease check refuses it once another instance holds the
lease, and the cursor's compare-and-set (height and epoch) refuses a write based on a cursor that
moved. The run loop steps down on a refused write, keeps the process alive, and stands by.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from chaindrivers.evm import E18 as ETH
from chaindrivers.evm import SENDER, head
from chaingate.devnet import evm_contracts as evm
from chaingate.devnet.manager import DevnetState
from chaingate.errors import FencedOut, StoreError
from chaingate.metrics import WatcherMetrics
from chaingate.store import chainstate, leases
from chaingate.watcher import Watcher
from harness import Gateway, devnet_network, gateway, until

LEASE = "watcher:ethereum-devnet"


@pytest.fixture
async def eth(devnet: DevnetState, db: Any, ledger_url: str) -> AsyncIterator[Gateway]:
    url = devnet.eth_url or ""
    network = devnet_network("ethereum-devnet", url, start_height=await head(url) + 1)
    async with gateway(network, db, ledger_url, holder="instance-a") as gw:
        yield gw


async def credited_deposit(gw: Gateway, url: str, user: str) -> int:
    """Pay ``user``, credit it, deliver it; the block it is in."""
    address = await gw.address(user)
    await evm.send_eth(url, SENDER, address, 2 * ETH)
    await evm.mine(url, 3)
    await gw.sync()
    await gw.deliver()
    [row] = await gw.deposits(user)
    assert row["status"] == "credited"
    return int(row["block_number"])


async def cursor_row(db: asyncpg.Pool) -> tuple[int, int]:
    row = await db.fetchrow("SELECT height, epoch FROM chain_cursor")
    assert row is not None
    return int(row["height"]), int(row["epoch"])


async def nothing_reversed(gw: Gateway, user: str) -> None:
    assert [r["status"] for r in await gw.deposits(user)] == ["credited"]
    kinds = {r["kind"] for r in await gw.db.fetch("SELECT kind FROM ledger_outbox")}
    assert kinds == {"credit"}
    assert [a["kind"] for a in await gw.alerts()] == []


async def depose(gw: Gateway) -> tuple[int, leases.Lease, Watcher]:
    """The leader stops renewing (its database connection died, the process hangs) and its
    lease expires; another instance takes it. The cursor and lease the old leader still holds,
    and its successor."""
    stale = gw.watcher.leadership.lease
    assert stale is not None
    cursor, _ = await cursor_row(gw.db)
    await gw.db.execute("UPDATE leases SET expires_at = now() - interval '1 second'")
    successor = Watcher(gw.watcher.adapter, gw.db, holder="instance-b")
    taken = await successor.leadership.hold()
    assert taken is not None and taken.epoch == stale.epoch + 1
    return cursor, stale, successor


async def test_deposed_leader_finishing_a_stale_rollback_is_refused(
    eth: Gateway, devnet: DevnetState
) -> None:
    """The lease check alone stops this one: the new leader has not written yet, so the
    cursor's height and epoch are still the ones the deposed leader read."""
    url = devnet.eth_url or ""
    block = await credited_deposit(eth, url, "nina")
    cursor, stale, successor = await depose(eth)
    with pytest.raises(FencedOut):
        await eth.watcher._rollback(stale, cursor, block - 1)
    await nothing_reversed(eth, "nina")
    assert await cursor_row(eth.db) == (cursor, stale.epoch)

    # Once the successor has written, the cursor's epoch refuses the old leader as well.
    await successor.step()
    assert (await cursor_row(eth.db))[1] == stale.epoch + 1
    with pytest.raises(FencedOut):
        await eth.watcher._rollback(stale, cursor, block - 1)
    with pytest.raises(FencedOut):  # and so does every other write path, e.g. crediting
        await eth.watcher.step()
    await nothing_reversed(eth, "nina")


async def test_cursor_epoch_refuses_an_older_leader_even_past_the_lease_check(
    eth: Gateway, devnet: DevnetState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: where the lease row check cannot serialise (say a database without
    row locks in the proxy's path), the cursor row still carries the last writer's epoch."""
    url = devnet.eth_url or ""
    block = await credited_deposit(eth, url, "olga")
    cursor, stale, successor = await depose(eth)
    await successor.step()  # same height (nothing new mined), a higher epoch on the cursor

    async def no_check(conn: asyncpg.Connection, lease: leases.Lease) -> None:
        return None

    monkeypatch.setattr(leases, "check", no_check)
    with pytest.raises(FencedOut):
        await eth.watcher._rollback(stale, cursor, block - 1)
    await nothing_reversed(eth, "olga")


async def test_a_rollback_from_a_cursor_that_moved_on_is_refused(
    eth: Gateway, devnet: DevnetState
) -> None:
    """The leader's lease holds, but the cursor it read is no longer the cursor: the rollback's
    compare-and-set refuses it, whoever moved the cursor (a second process sharing one
    instance id, a step that outlived its own successor)."""
    url = devnet.eth_url or ""
    block = await credited_deposit(eth, url, "pia")
    lease = eth.watcher.leadership.lease
    assert lease is not None
    read, _ = await cursor_row(eth.db)
    await evm.mine(url, 2)
    await eth.sync()
    assert (await cursor_row(eth.db))[0] == read + 2
    with pytest.raises(StoreError, match="cursor moved"):
        await eth.watcher._rollback(lease, read, block - 1)
    await nothing_reversed(eth, "pia")
    async with eth.db.acquire() as conn, conn.transaction():
        with pytest.raises(StoreError, match="cursor moved"):
            await chainstate.move_cursor(conn, lease, "ethereum-devnet", read, read + 5)


async def test_two_running_instances_hand_over_and_the_deposed_one_steps_down(
    eth: Gateway, devnet: DevnetState
) -> None:
    url = devnet.eth_url or ""
    address = await eth.address("quin")
    metrics = WatcherMetrics()
    first = Watcher(eth.watcher.adapter, eth.db, holder="instance-a", lease_ttl=1.5)
    second = Watcher(
        eth.watcher.adapter, eth.db, holder="instance-b", lease_ttl=1.5, metrics=metrics
    )
    first.metrics = metrics
    stop = asyncio.Event()
    a = asyncio.create_task(first.run(stop))
    await until(lambda: _holder_is(eth.db, "instance-a"), 10)
    b = asyncio.create_task(second.run(stop))
    try:
        await evm.send_eth(url, SENDER, address, ETH)
        await evm.mine(url, 3)
        await until(lambda: _credited(eth.db, 1), 30)
        # The leader is cut off: its lease expires and the standby takes the network over (set
        # here in one statement, so the old leader cannot win the race to re-acquire it).
        await eth.db.execute(
            "UPDATE leases SET holder = 'instance-b', epoch = epoch + 1, acquired_at = now()"
        )
        await until(lambda: _holder_is(eth.db, "instance-b"), 10)
        await until(lambda: _deposed(metrics), 10)
        await evm.send_eth(url, SENDER, address, ETH + 1)
        await evm.mine(url, 3)
        await until(lambda: _credited(eth.db, 2), 30)
        assert not a.done() and not b.done()  # the deposed one stands by, the process lives
        epoch = (await cursor_row(eth.db))[1]
        assert epoch == 2
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(a, b), timeout=15)
    await eth.deliver()
    assert await eth.balances("quin") == {"ETH": 2 * ETH + 1}
    assert len(await eth.credits("quin")) == 2
    assert await leases.current(eth.db, LEASE) is None  # released on a clean stop


async def _holder_is(db: asyncpg.Pool, holder: str) -> bool:
    lease = await leases.current(db, LEASE)
    return lease is not None and lease.holder == holder


async def _credited(db: asyncpg.Pool, count: int) -> bool:
    n = await db.fetchval("SELECT count(*) FROM deposits WHERE status = 'credited'")
    return int(n) == count


async def _deposed(metrics: WatcherMetrics) -> bool:
    value = metrics.registry.get_sample_value(
        "chaingate_watcher_deposed_total", {"network": "ethereum-devnet"}
    )
    return bool(value)
