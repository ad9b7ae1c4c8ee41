"""The watcher under faults: a failing or lying endpoint stops the cursor, never skips a height,
and the run loop rides out endpoint errors and dropped database connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from asyncpg.exceptions._base import InternalClientError

from chaindrivers.evm import E18 as ETH
from chaindrivers.evm import SENDER, head
from chaingate.devnet import evm_contracts as evm
from chaingate.devnet.manager import DevnetState
from chaingate.errors import ChainDataError, ProviderError
from chaingate.store import chainstate
from faultproxy import FaultProxy
from harness import Gateway, devnet_network, gateway, until


@pytest.fixture
async def proxied(
    devnet: DevnetState, db: Any, ledger_url: str
) -> AsyncIterator[tuple[Gateway, FaultProxy]]:
    url = devnet.eth_url or ""
    proxy = FaultProxy(url)
    await proxy.start()
    network = devnet_network("ethereum-devnet", proxy.url, start_height=await head(url) + 1)
    try:
        async with gateway(network, db, ledger_url) as gw:
            yield gw, proxy
    finally:
        await proxy.stop()


async def _statuses_are(gw: Gateway, expected: list[str]) -> bool:
    try:
        rows = await gw.db.fetch("SELECT status FROM deposits ORDER BY id")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, InternalClientError):
        # A pooled connection the server terminated while it sat idle can surface once as
        # InternalClientError (asyncpg reads the FATAL notice late); the next one is fresh.
        return False
    return [r["status"] for r in rows] == expected


async def cursor(gw: Gateway) -> int | None:
    async with gw.db.acquire() as conn:
        return await chainstate.get_cursor(conn, gw.network.name)


@pytest.mark.parametrize("fault", ["status", "wrong_hash"])
async def test_a_block_that_fails_stops_the_cursor_and_is_not_skipped(
    proxied: tuple[Gateway, FaultProxy], devnet: DevnetState, fault: str
) -> None:
    gw, proxy = proxied
    url = devnet.eth_url or ""
    address = await gw.address("kate")
    await gw.sync()
    before = await cursor(gw)
    await evm.send_eth(url, SENDER, address, 2 * ETH)
    await evm.mine(url, 3)
    if fault == "status":
        proxy.faults.status = 500  # every endpoint answer is a 500
        expected: type[Exception] = ProviderError
    else:
        proxy.faults.wrong_hash = True  # the endpoint lies about block hashes
        expected = ChainDataError
    for _ in range(3):
        with pytest.raises(expected):
            await gw.watcher.step()
        assert await cursor(gw) == before
    assert await gw.deposits("kate") == []
    proxy.reset()
    await gw.sync()
    await gw.deliver()
    assert [r["status"] for r in await gw.deposits("kate")] == ["credited"]
    assert await gw.balances("kate") == {"ETH": 2 * ETH}


async def test_run_loop_survives_endpoint_errors_and_dropped_database_connections(
    proxied: tuple[Gateway, FaultProxy], devnet: DevnetState, database: str
) -> None:
    gw, proxy = proxied
    url = devnet.eth_url or ""
    address = await gw.address("liam")
    stop = asyncio.Event()
    runner = asyncio.create_task(gw.watcher.run(stop))
    try:
        proxy.faults.status = 503
        await evm.send_eth(url, SENDER, address, 3 * ETH)
        await evm.mine(url, 3)
        await asyncio.sleep(1.0)  # the loop keeps failing, backing off, not crashing
        assert not runner.done()
        proxy.reset()
        # Cut every database connection of the gateway's database, as a restart would.
        admin = await asyncpg.connect(database)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()
        await until(lambda: _statuses_are(gw, ["credited"]), 15)
        assert not runner.done(), runner
    finally:
        stop.set()
        await asyncio.wait_for(runner, timeout=15)
    await gw.deliver()
    assert await gw.balances("liam") == {"ETH": 3 * ETH}


async def test_two_instances_watching_one_network_credit_once(
    proxied: tuple[Gateway, FaultProxy], devnet: DevnetState
) -> None:
    gw, _ = proxied
    url = devnet.eth_url or ""
    address = await gw.address("mona")
    other = type(gw.watcher)(gw.watcher.adapter, gw.db)  # a second instance, own memory
    stop = asyncio.Event()
    runners = [asyncio.create_task(w.run(stop)) for w in (gw.watcher, other)]
    try:
        for i in range(5):
            await evm.send_eth(url, SENDER, address, ETH + i)
        await evm.mine(url, 3)
        for _ in range(60):
            rows = await gw.db.fetch("SELECT status FROM deposits")
            if len(rows) == 5 and {r["status"] for r in rows} == {"credited"}:
                break
            await asyncio.sleep(0.25)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*runners), timeout=15)
    await gw.deliver()
    assert await gw.balances("mona") == {"ETH": 5 * ETH + 10}
    assert len(await gw.credits("mona")) == 5
