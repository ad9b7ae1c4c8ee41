"""GET /v1/networks through real watchers on anvil: the API process runs no watchers and reads
what a separate watchers process publishes (head, endpoint health), the cursor and the leader
lease, and says when the gateway has caught up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import asyncpg
import pytest

from chaindrivers.evm import head
from chaingate.api.networks import CAUGHT_UP_LAG, STALE_AFTER_SECONDS, Progress, caught_up
from chaingate.chains.registry import open_pool
from chaingate.devnet import evm_contracts as evm
from chaingate.devnet.config import free_ports
from chaingate.devnet.manager import DevnetState
from chaingate.service import run_service
from chaingate.settings import Settings
from chaingate.store import leases, netstatus
from chaingate.watcher.status import best_head, health_records
from harness import SERVICE_TOKEN, devnet_network, until

VIEWER = "test-viewer-token-0000001"
TOKENS = (
    f'{{"{SERVICE_TOKEN}": {{"principal": "svc", "roles": ["service"]}},'
    f' "{VIEWER}": {{"principal": "auditor", "roles": ["viewer"]}}}}'
)


@asynccontextmanager
async def service(
    database: str, eth_url: str, roles: list[str], port: int = 0
) -> AsyncIterator[Settings]:
    settings = Settings.from_env(
        {
            "CHAINGATE_DATABASE_URL": database,
            "CHAINGATE_NETWORKS": "ethereum-devnet",
            "CHAINGATE_ETHEREUM_DEVNET_RPC": eth_url,
            "CHAINGATE_API_PORT": str(port or 8080),
            "CHAINGATE_API_TOKENS": TOKENS,
        }
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_service(settings, roles, stop))
    try:
        yield settings
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def networks(port: int, token: str = VIEWER) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"http://127.0.0.1:{port}/v1/networks", headers={"Authorization": f"Bearer {token}"}
        ) as resp,
    ):
        return resp.status, dict(await resp.json())


def only(body: dict[str, Any]) -> dict[str, Any]:
    [view] = body["networks"]
    return view


async def test_networks_report_head_cursor_lag_endpoints_leader_and_catch_up(
    devnet: DevnetState, database: str, db: asyncpg.Pool
) -> None:
    url = devnet.eth_url or ""
    (port,) = free_ports(1)
    async with service(database, url, ["api"], port):

        async def serving() -> bool:
            try:
                return (await networks(port))[0] == 200
            except aiohttp.ClientError:
                return False

        await until(serving, 30)
        # Nothing publishes yet: nothing is known, and nothing claims to be caught up.
        status, body = await networks(port)
        view = only(body)
        assert status == 200 and body["caught_up"] is False
        assert (view["head"], view["cursor"], view["caught_up"]) == (None, None, False)
        assert (await networks(port, "not-a-token-000000000"))[0] == 401

        # A separate process with the watchers role publishes; the API process reads it.
        async with service(database, url, ["watchers"]):

            async def caught() -> bool:
                return bool((await networks(port))[1]["caught_up"])

            await until(caught, 60)
            status, body = await networks(port, SERVICE_TOKEN)
            view = only(body)
            chain_head = await head(url)
            assert status == 200 and view["network"] == "ethereum-devnet"
            assert chain_head - 2 <= view["head"] <= chain_head
            assert view["head"] - CAUGHT_UP_LAG <= view["cursor"] <= view["head"]
            assert view["lag_blocks"] == view["head"] - view["cursor"]
            assert view["lag_seconds"] == pytest.approx(view["lag_blocks"] * 1.0)
            [endpoint] = view["endpoints"]
            assert endpoint["name"] == "anvil" and endpoint["healthy"] is True
            assert "url" not in endpoint and url not in str(body)
            assert view["status_age_seconds"] < STALE_AFTER_SECONDS
            assert endpoint["chain_check"] == "ok"  # it proved it serves chain id 31337
            lease = await leases.current(db, "watcher:ethereum-devnet")
            assert lease is not None
            assert view["leader"]["instance"] == lease.holder == view["status_instance"]
            assert view["leader"]["epoch"] == lease.epoch >= 1

        # Watchers gone, the chain moves on: a publisher that sees the new head (a process
        # whose watcher is stuck) makes the API report the lag, not "caught up".
        await evm.mine(url, 20)
        async with open_pool(devnet_network("ethereum-devnet", url)) as pool:
            await pool.best_head()
            records = health_records(pool)
            await netstatus.publish(db, "ethereum-devnet", "stuck", best_head(records), records)
        view = only((await networks(port))[1])
        assert view["lag_blocks"] >= 20 and view["caught_up"] is False
        # And a status nobody refreshed is not believed either.
        await db.execute(
            "UPDATE network_status SET head = $1, updated_at = now() - interval '1 hour'",
            view["cursor"],
        )
        view = only((await networks(port))[1])
        assert view["lag_blocks"] == 0 and view["caught_up"] is False


@pytest.mark.parametrize(
    ("progress", "expected"),
    [
        (Progress(head=100, cursor=100, status_age=1.0), True),
        (Progress(head=100, cursor=100 - CAUGHT_UP_LAG, status_age=1.0), True),
        (Progress(head=100, cursor=100 - CAUGHT_UP_LAG - 1, status_age=1.0), False),
        (Progress(head=100, cursor=100, status_age=STALE_AFTER_SECONDS + 0.1), False),
        (Progress(head=100, cursor=None, status_age=1.0), False),
        (Progress(head=None, cursor=100, status_age=1.0), False),
        (Progress(head=100, cursor=100, status_age=None), False),
        (Progress(head=99, cursor=100, status_age=1.0), True),  # an endpoint a block behind us
    ],
)
def test_caught_up_needs_a_fresh_head_and_a_cursor_near_it(
    progress: Progress, expected: bool
) -> None:
    assert caught_up(progress) is expected
