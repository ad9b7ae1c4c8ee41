"""What counts as a reorg (SPEC section 4, issue 8 item 1), against anvil behind the fault proxy.

A backend behind a load balancer that is a few blocks behind answers "not found" above its own
head: no evidence either way, so nothing credited is reversed. One that reports a head but does
not serve blocks at or below it is at fault: benched, and another endpoint is asked. A chain
that really became shorter still shows another hash lower down, and is rolled back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog

from chaindrivers.evm import E18 as ETH
from chaindrivers.evm import SENDER, head, rpc
from chaingate.devnet import evm_contracts as evm
from chaingate.devnet.manager import DevnetState
from chaingate.errors import ChainDataError, EndpointInconsistentError
from faultproxy import FaultProxy, running_proxy
from harness import Gateway, devnet_network, gateway


@pytest.fixture
async def proxy(devnet: DevnetState) -> AsyncIterator[FaultProxy]:
    async with running_proxy(devnet.eth_url or "") as proxy:
        yield proxy


@pytest.fixture
async def lagging(
    devnet: DevnetState, db: Any, ledger_url: str, proxy: FaultProxy
) -> AsyncIterator[Gateway]:
    """The network's only endpoint is the (sometimes) lagging one."""
    url = devnet.eth_url or ""
    network = devnet_network("ethereum-devnet", proxy.url, start_height=await head(url) + 1)
    async with gateway(network, db, ledger_url) as gw:
        yield gw


@pytest.fixture
async def two_endpoints(
    devnet: DevnetState, db: Any, ledger_url: str, proxy: FaultProxy
) -> AsyncIterator[Gateway]:
    """A good endpoint and one behind the fault proxy."""
    url = devnet.eth_url or ""
    network = devnet_network("ethereum-devnet", url, start_height=await head(url) + 1)
    good = network.endpoints[0]
    bad = dataclasses.replace(good, name="unlucky-backend", url=proxy.url)
    network = dataclasses.replace(network, endpoints=(good, bad))
    async with gateway(network, db, ledger_url) as gw:
        yield gw


async def credited_near_the_tip(gw: Gateway, url: str, user: str) -> int:
    """A deposit credited with exactly its 3 confirmations: its block is head - 2."""
    address = await gw.address(user)
    await gw.sync()
    await evm.send_eth(url, SENDER, address, 2 * ETH)
    await evm.mine(url, 2)
    await gw.sync()
    await gw.deliver()
    [row] = await gw.deposits(user)
    assert row["status"] == "credited" and int(row["block_number"]) == await head(url) - 2
    return int(row["block_number"])


async def still_credited_once(gw: Gateway, user: str) -> None:
    assert [r["status"] for r in await gw.deposits(user)] == ["credited"]
    assert {r["kind"] for r in await gw.db.fetch("SELECT kind FROM ledger_outbox")} == {"credit"}
    assert [a["kind"] for a in await gw.alerts()] == []
    await gw.deliver()
    assert await gw.balances(user) == {"ETH": 2 * ETH}
    assert len(await gw.credits(user)) == 1


async def test_a_lagging_backend_reverses_nothing(
    lagging: Gateway, proxy: FaultProxy, devnet: DevnetState
) -> None:
    url = devnet.eth_url or ""
    await credited_near_the_tip(lagging, url, "rhea")
    proxy.faults.lag = 3  # its head is below the deposit's block, which it does not serve
    for _ in range(3):
        result = await lagging.step()
        assert result.reorg_depth == 0
    await still_credited_once(lagging, "rhea")
    proxy.reset()
    await evm.mine(url, 1)
    await lagging.sync()
    await still_credited_once(lagging, "rhea")


async def test_a_backend_missing_blocks_below_its_own_head_is_an_endpoint_fault(
    lagging: Gateway, proxy: FaultProxy, devnet: DevnetState
) -> None:
    url = devnet.eth_url or ""
    await credited_near_the_tip(lagging, url, "sami")
    proxy.faults.unserved_top = 2  # reports the real head, serves blocks only below it
    with pytest.raises(EndpointInconsistentError):
        await lagging.step()
    assert lagging.pool is not None
    [health] = lagging.pool.health_snapshot()
    assert not health.healthy  # benched: a lying endpoint pays like a failing one
    await still_credited_once(lagging, "sami")


async def test_the_fork_check_fails_over_from_a_backend_missing_blocks(
    two_endpoints: Gateway, proxy: FaultProxy, devnet: DevnetState
) -> None:
    gw = two_endpoints
    url = devnet.eth_url or ""
    await credited_near_the_tip(gw, url, "tara")
    proxy.faults.unserved_top = 2
    # A step whose fork check lands on the unlucky backend fails (and benches it); the next
    # one reads the good endpoint. No step reverses anything.
    failed = 0
    for _ in range(4):
        try:
            result = await gw.step()
        except EndpointInconsistentError:
            failed += 1
            continue
        assert result.reorg_depth == 0
    assert failed <= 1
    assert gw.pool is not None
    health = {h.name: h.healthy for h in gw.pool.health_snapshot()}
    assert health[gw.network.endpoints[0].name]
    await still_credited_once(gw, "tara")


async def test_a_fork_that_would_reverse_credits_and_is_not_seen_again_reverses_nothing(
    lagging: Gateway, proxy: FaultProxy, devnet: DevnetState
) -> None:
    """The endpoint serves another branch once (self-consistent sibling blocks from the
    deposit's block up to the tip, as a backend on a short-lived fork would): the fork check
    sees a reorg that would reverse a credit, reads it a second time, does not see it again,
    and rolls nothing back."""
    gw, url = lagging, devnet.eth_url or ""
    block = await credited_near_the_tip(gw, url, "vera")
    proxy.faults.sibling_blocks = set(range(block, await head(url) + 1))
    with structlog.testing.capture_logs() as logs, pytest.raises(ChainDataError, match="fork at"):
        await gw.step()
    assert not proxy.faults.sibling_blocks  # the other branch was served, and seen
    assert [e["fork_height"] for e in logs if e["event"] == "reorg_unconfirmed"] == [block - 1]
    result = await gw.step()
    assert result.reorg_depth == 0
    await still_credited_once(gw, "vera")


async def test_a_chain_that_really_got_shorter_is_still_rolled_back(
    lagging: Gateway, devnet: DevnetState
) -> None:
    """evm_revert to before the deposit and one new block: the new chain is two blocks shorter
    than the cursor, and shows another hash at the height of its own head."""
    gw, url = lagging, devnet.eth_url or ""
    address = await gw.address("uma")
    await gw.sync()
    snapshot = await rpc(url, "evm_snapshot")
    await evm.send_eth(url, SENDER, address, 2 * ETH)
    await evm.mine(url, 2)
    await gw.sync()
    await gw.deliver()
    cursor = await head(url)
    assert await gw.balances("uma") == {"ETH": 2 * ETH}
    assert await rpc(url, "evm_revert", snapshot)
    await evm.mine(url, 1)
    assert await head(url) == cursor - 2
    result = await gw.step()
    assert result.reorg_depth == 3 and result.credited == 0
    rows = await gw.deposits("uma")
    assert [(r["status"], r["reason"]) for r in rows] == [("reversed", "reorg")]
    await gw.deliver()
    assert await gw.balances("uma") == {"ETH": 0}
