"""One network's failure never stops another network, the API or the dispatcher (SPEC section 5,
issue 8 item 9): each network's tasks are supervised, restarted with backoff after a crash, and
reported per network in /readyz."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, cast

import aiohttp
import asyncpg
import pytest

from chaindrivers.bitcoin import ltc_rpc
from chaindrivers.evm import E18 as ETH
from chaindrivers.evm import SENDER, head
from chaingate.chains.base import ChainAdapter, WatchedAddresses
from chaingate.devnet import evm_contracts as evm
from chaingate.devnet.manager import DevnetState
from chaingate.domain import ScanResult
from chaingate.service import run_service
from chaingate.settings import Settings
from chaingate.watcher import Watcher
from chaingate.watcher.supervisor import SupervisorMetrics, TaskStatus, supervise
from faultproxy import free_port, running_proxy
from harness import (
    DEVNET_CHAINS,
    LEDGER_SECRET,
    SERVICE_TOKEN,
    TOKENS,
    devnet_network,
    gateway,
    until,
)


class DecoderBug:
    """The real adapter, except that its scan raises KeyError while ``broken``: a decoder bug
    on demand. No real node answer produces one any more (every decode error is a
    ChainDataError, which the watcher retries), so this wrapper stands in for the bug."""

    def __init__(self, inner: ChainAdapter) -> None:
        self.inner = inner
        self.broken = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def scan(self, start: int, end: int, watched: WatchedAddresses) -> ScanResult:
        if self.broken:
            raise KeyError("transactions")
        return await self.inner.scan(start, end, watched)


async def _status(db: asyncpg.Pool, network: str) -> set[str]:
    rows = await db.fetch("SELECT status FROM deposits WHERE network = $1", network)
    return {r["status"] for r in rows}


async def test_a_crashing_network_is_restarted_and_never_stops_another(
    devnet: DevnetState, db: Any, ledger_url: str
) -> None:
    eth_url = devnet.eth_url or ""
    eth_net = devnet_network("ethereum-devnet", eth_url, start_height=await head(eth_url) + 1)
    async with ltc_rpc(devnet) as ltc:
        await ltc.mine(1)
        height = int(await ltc.call("getblockcount", wallet=False))
        btc_net = devnet_network(
            "bitcoin-devnet", devnet.ltc_rpc_url or "", start_height=height + 1, confirmations=2
        )
        async with (
            gateway(eth_net, db, ledger_url) as eth,
            gateway(btc_net, db, ledger_url) as btc,
        ):
            bug = DecoderBug(eth.watcher.adapter)
            broken = Watcher(cast(ChainAdapter, bug), db, holder="crashing")
            metrics = SupervisorMetrics()
            statuses = {"eth": TaskStatus(), "btc": TaskStatus()}
            stop = asyncio.Event()
            runs = [
                supervise("ethereum-devnet", "watcher", lambda: broken.run(stop), stop,
                          statuses["eth"], metrics=metrics, base=0.05),
                supervise("bitcoin-devnet", "watcher", lambda: btc.watcher.run(stop), stop,
                          statuses["btc"], metrics=metrics, base=0.05),
            ]  # fmt: skip
            tasks = [asyncio.create_task(job) for job in runs]
            try:
                eth_address = await eth.address("cora")
                btc_address = await btc.address("cora")
                await evm.send_eth(eth_url, SENDER, eth_address, ETH)
                await evm.mine(eth_url, 3)
                await ltc.send_to_script(btc_address, 900_000)
                await ltc.mine(2)
                await until(lambda: _has(db, "bitcoin-devnet", "credited"), 30)
                await until(lambda: _restarted(statuses["eth"], 2), 30)
                assert statuses["btc"].state == "running" and statuses["btc"].restarts == 0
                assert statuses["eth"].last_error == "KeyError: 'transactions'"
                bug.broken = False  # the bug is fixed (in real life: the data changes, a deploy)
                await until(lambda: _has(db, "ethereum-devnet", "credited"), 30)
                assert not any(t.done() for t in tasks)
            finally:
                stop.set()
                await asyncio.wait_for(asyncio.gather(*tasks), timeout=15)
            assert {s.state for s in statuses.values()} == {"stopped"}
            restarts = metrics.restarts.labels("ethereum-devnet", "watcher")._value.get()
            assert restarts >= 2


async def _has(db: asyncpg.Pool, network: str, status: str) -> bool:
    return status in await _status(db, network)


async def _restarted(status: TaskStatus, times: int) -> bool:
    return status.restarts >= times


async def test_the_service_keeps_serving_when_one_network_gets_garbage(
    devnet: DevnetState, db: Any, database: str, ledger_url: str
) -> None:
    """`run_service` with the Ethereum endpoint answering garbage: the API answers, /readyz
    reports each network, and Bitcoin deposits are credited and delivered to the ledger."""
    async with running_proxy(devnet.eth_url or "") as proxy, ltc_rpc(devnet) as ltc:
        proxy.faults.status = 200  # "200 fault injected": not JSON, not JSON-RPC
        await ltc.mine(1)
        height = int(await ltc.call("getblockcount", wallet=False))
        btc_net = devnet_network(
            "bitcoin-devnet", devnet.ltc_rpc_url or "", start_height=height + 1, confirmations=2
        )
        eth_net = devnet_network("ethereum-devnet", proxy.url, start_height=1)
        port = free_port()
        settings = Settings(
            database_url=database,
            networks={eth_net.name: eth_net, btc_net.name: btc_net},
            chains_dir=DEVNET_CHAINS,
            api_tokens=TOKENS,
            ledger_url=ledger_url,
            ledger_secret=LEDGER_SECRET,
            api_port=port,
            watcher_lease_seconds=5,
            # Past the indexes earlier tests of the session paid (the address-index guard).
            address_start={btc_net.name: 10_000 + secrets.randbelow(1_000_000)},
        )
        stop = asyncio.Event()
        service = asyncio.create_task(
            run_service(settings, ["api", "watchers", "dispatcher"], stop)
        )
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
        try:
            async with aiohttp.ClientSession() as http:

                async def up() -> bool:
                    assert not service.done(), service
                    try:
                        async with http.get(f"{base}/readyz") as resp:
                            return resp.status in (200, 503)
                    except aiohttp.ClientError:
                        return False

                await until(up, 30)
                body = {"user_id": "dora", "network": "bitcoin-devnet"}
                async with http.post(f"{base}/v1/deposit-addresses", json=body, headers=auth) as r:
                    assert r.status in (200, 201)
                    address = (await r.json())["address"]
                await ltc.send_to_script(address, 1_200_000)
                await ltc.mine(2)

                async def delivered() -> bool:
                    assert not service.done(), service
                    return bool(
                        await db.fetchval(
                            "SELECT count(*) FROM ledger_outbox WHERE delivered_at IS NOT NULL"
                        )
                    )

                await until(delivered, 60)
                async with http.get(f"{base}/readyz") as resp:
                    answer = await resp.json()
                    checks = answer["checks"]
                # Per network: Bitcoin is ready whatever Ethereum's endpoints answer.
                networks = answer["networks"]
                assert set(networks) == {"bitcoin-devnet", "ethereum-devnet"}
                assert networks["bitcoin-devnet"] is True
                eth_up = any(e["healthy"] for e in checks["endpoints:ethereum-devnet"])
                assert eth_up or (networks["ethereum-devnet"] is False and resp.status == 503)
                assert checks["watcher:bitcoin-devnet"]["state"] == "running"
                assert checks["watcher:ethereum-devnet"]["state"] in ("running", "restarting")
                assert "endpoints:ethereum-devnet" in checks
                params = {"user_id": "dora", "network": "bitcoin-devnet"}
                async with http.get(f"{base}/v1/deposits", params=params, headers=auth) as r:
                    assert r.status == 200
                    [deposit] = (await r.json())["deposits"]
                assert deposit["status"] == "credited"
        finally:
            stop.set()
            await asyncio.wait_for(service, timeout=20)


pytestmark = pytest.mark.timeout(180)
