"""A gateway assembled from real parts for end-to-end tests: the network's adapter over a real
endpoint pool, the watcher on a real database, the service API over real HTTP, and the reference
ledger over real HTTP fed by the outbox dispatcher."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient, TestServer

from chaingate.api import ApiContext, build_app
from chaingate.chains.registry import address_codec, build_adapter, open_pool
from chaingate.domain import Network
from chaingate.ledger.client import LedgerClient
from chaingate.ledger.dispatcher import OutboxDispatcher
from chaingate.providers import EndpointPool
from chaingate.providers.identity import WrongChainSink
from chaingate.registry import load_network
from chaingate.settings import PROJECT_ROOT, Principal
from chaingate.watcher import StepResult, Watcher

SERVICE_TOKEN = "test-service-token-000001"
TOKENS = {SERVICE_TOKEN: Principal("ledger-service", frozenset({"service", "viewer"}))}
LEDGER_SECRET = b"test-ledger-secret-0123456789"
DEVNET_CHAINS = PROJECT_ROOT / "chains" / "devnet"
# Gateways a test opens one after another stand for one instance restarting (same instance id,
# so a "killed" one's watcher lease is its own); two-instance tests name their holders.
INSTANCE = "test-instance"


def devnet_network(name: str, url: str, **overrides: Any) -> Network:
    """A devnet network from chains/devnet with its endpoint pointed at ``url``."""
    network = load_network(Path(DEVNET_CHAINS / f"{name}.toml"), {})
    endpoint = dataclasses.replace(network.endpoints[0], url=url)
    return dataclasses.replace(network, endpoints=(endpoint,), **overrides)


@dataclasses.dataclass
class Gateway:
    network: Network
    db: asyncpg.Pool
    watcher: Watcher
    api: TestClient[Any, Any]
    ledger: LedgerClient
    dispatcher: OutboxDispatcher
    pool: EndpointPool | None = None  # the network's endpoint pool (health, metrics)

    async def address(self, user_id: str, network: str | None = None) -> str:
        resp = await self.api.post(
            "/v1/deposit-addresses",
            json={"user_id": user_id, "network": network or self.network.name},
            headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
        )
        assert resp.status in (200, 201), await resp.text()
        return str((await resp.json())["address"])

    async def deposits(self, user_id: str | None = None, **query: str) -> list[dict[str, Any]]:
        params = {"network": self.network.name, **query}
        if user_id:
            params["user_id"] = user_id
        resp = await self.api.get(
            "/v1/deposits", params=params, headers={"Authorization": f"Bearer {SERVICE_TOKEN}"}
        )
        assert resp.status == 200, await resp.text()
        return list((await resp.json())["deposits"])

    async def step(self, times: int = 1) -> StepResult:
        result = await self.watcher.step()
        for _ in range(times - 1):
            result = await self.watcher.step()
        return result

    async def sync(self) -> StepResult:
        """Step until caught up with the head (a no-op step when already there) in a step that
        found no reorg (a step that rolls back credits nothing: the next one does). The result
        is the last step's, with the deepest reorg any of them found."""
        result = await self.watcher.step()
        depth = result.reorg_depth
        while not result.caught_up or result.reorg_depth:
            result = await self.watcher.step()
            depth = max(depth, result.reorg_depth)
        return dataclasses.replace(result, reorg_depth=depth)

    async def deliver(self) -> int:
        return await self.dispatcher.dispatch_once()

    async def settle(self) -> None:
        """Catch up with the chain and deliver every outbox message the ledger is due."""
        await self.sync()
        while await self.deliver():
            pass

    async def balances(self, user_id: str) -> dict[str, int]:
        answer = await self.ledger.get("/balances", {"user_id": user_id})
        return {
            b["asset"]: int(b["amount"])
            for b in answer["balances"]
            if b["network"] == self.network.name
        }

    async def credits(self, user_id: str) -> list[dict[str, Any]]:
        return list((await self.ledger.get("/credits", {"user_id": user_id}))["credits"])

    async def alerts(self) -> list[dict[str, Any]]:
        rows = await self.db.fetch("SELECT * FROM alerts ORDER BY id")
        return [dict(r) for r in rows]


@asynccontextmanager
async def gateway(
    network: Network,
    db: asyncpg.Pool,
    ledger_url: str,
    extra: Mapping[str, Network] | None = None,
    on_wrong_chain: WrongChainSink | None = None,
    *,
    holder: str = INSTANCE,
) -> AsyncIterator[Gateway]:
    networks = {network.name: network, **(extra or {})}
    ctx = ApiContext(
        db=db,
        networks=networks,
        codecs={n.name: address_codec(n) for n in networks.values()},
        tokens=TOKENS,
    )
    async with (
        open_pool(network, on_wrong_chain=on_wrong_chain) as pool,
        TestClient(TestServer(build_app(ctx))) as api,
        LedgerClient(ledger_url, LEDGER_SECRET) as ledger,
    ):
        watcher = Watcher(build_adapter(network, pool), db, holder=holder)
        dispatcher = OutboxDispatcher(db, ledger, base_backoff=0.05, retry_wait=0.01)
        yield Gateway(network, db, watcher, api, ledger, dispatcher, pool)


async def settle(gw: Gateway) -> None:
    """Catch up with the chain and deliver every outbox message the ledger is due."""
    await gw.sync()
    while await gw.deliver():
        pass


async def by_txid(gw: Gateway, user: str) -> dict[str, dict[str, Any]]:
    """The user's deposits on the gateway's network, by txid."""
    return {d["txid"]: d for d in await gw.deposits(user)}


async def eventually(
    check: Callable[[], Awaitable[bool]], step: Callable[[], Awaitable[Any]], tries: int = 40
) -> None:
    for _ in range(tries):
        if await check():
            return
        await step()
    assert await check(), "condition never became true"


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
    """Wait for ``check`` with a deadline (a condition, never a guessed sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await check():
        assert loop.time() < deadline, "condition never became true"
        await asyncio.sleep(0.02)


# Delays after which a test kills a watcher step and a delivery mid-flight ("restart anywhere").
# The last ones let a whole step through (lease, fork check, fenced writes) on a busy machine.
CUT_AFTER = (0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.15, 0.4)


async def interrupted_step(gw: Gateway, delay: float) -> bool:
    """Start one watcher step and one delivery, kill both after ``delay`` s; did the step end?"""
    step, deliver = asyncio.create_task(gw.step()), asyncio.create_task(gw.deliver())
    await asyncio.sleep(delay)
    for task in (step, deliver):
        task.cancel()
    await asyncio.gather(step, deliver, return_exceptions=True)
    return not step.cancelled()
