"""Multi-endpoint faults through a real watcher, real anvils and the reference ledger.

Each Ethereum network here has two endpoints, each behind a fault proxy: one lies in one way
(serves another chain, drops eth_getLogs results, mangles blocks, renames block hashes), the
other is honest. What must hold, checked at the reference ledger's balances: no deposit is lost
or credited twice, the liar pays for its answers (failed over, benched, never counted), and when
every endpoint lies the cursor stops at the block it could not prove.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from chaindrivers.evm import E18 as ETH
from chaindrivers.evm import E18 as NEXO
from chaindrivers.evm import SENDER, head
from chaingate.alerting.endpoints import WRONG_CHAIN_KIND, wrong_chain_alerts
from chaingate.chains.evm.adapter import LogSource
from chaingate.devnet import evm_contracts as evm
from chaingate.devnet.manager import DevnetState
from chaingate.domain import Network
from chaingate.errors import ChainDataError, IncompleteLogsError
from chaingate.providers.health import ChainCheck
from chaingate.settings import PROJECT_ROOT
from chaingate.store import chainstate
from faultproxy import FaultProxy
from harness import LEDGER_SECRET, Gateway, devnet_network, gateway, until
from providers_support import two_proxies
from test_deposits_evm import eth

__all__ = ["eth"]  # the fixture (a gateway on the same database, for the ledger's view)


def two_endpoints(
    base: Network, first: tuple[str, str, int], second: tuple[str, str, int]
) -> Network:
    """``base`` served by two endpoints (name, url, weight); weight 0 is a backup."""
    template = base.endpoints[0]
    endpoints = tuple(
        dataclasses.replace(template, name=name, url=url, weight=weight)
        for name, url, weight in (first, second)
    )
    return dataclasses.replace(base, endpoints=endpoints)


@pytest.fixture
async def proxies(devnet: DevnetState) -> AsyncIterator[tuple[FaultProxy, FaultProxy]]:
    async with two_proxies(devnet.eth_url or "") as pair:
        yield pair


@pytest.fixture
async def gw(
    devnet: DevnetState, db: Any, ledger_url: str, proxies: tuple[FaultProxy, FaultProxy]
) -> AsyncIterator[Gateway]:
    """alpha is tried first while it is usable; beta is the honest backup."""
    alpha, beta = proxies
    base = devnet_network(
        "ethereum-devnet", devnet.eth_url or "", start_height=await head(devnet.eth_url or "") + 1
    )
    network = two_endpoints(base, ("alpha", alpha.url, 1), ("beta", beta.url, 0))
    async with gateway(network, db, ledger_url) as gateway_:
        yield gateway_


async def cursor(gw: Gateway) -> int | None:
    async with gw.db.acquire() as conn:
        return await chainstate.get_cursor(conn, gw.network.name)


def bad_data_errors(gw: Gateway, endpoint: str) -> float:
    assert gw.pool is not None
    labels = {"network": gw.network.name, "endpoint": endpoint, "kind": "bad_data"}
    value = gw.pool.metrics.registry.get_sample_value("chaingate_provider_errors_total", labels)
    return value or 0.0


async def pay(devnet: DevnetState, gw: Gateway, user: str, eth: int, nexo: int) -> None:
    address = await gw.address(user)
    url, token = devnet.eth_url or "", devnet.eth_token or ""
    await evm.send_eth(url, SENDER, address, eth)
    await evm.token_transfer(url, token, SENDER, address, nexo)
    await evm.mine(url, 3)


async def test_wrong_chain_endpoint_is_never_used_nor_counted(
    devnet: DevnetState, db: Any, ledger_url: str
) -> None:
    # The BSC stand-in (another anvil, chain id 31338) pasted into Ethereum's endpoint list,
    # far ahead of the real head: unchecked, it would bench the real endpoint as lagging.
    bsc, eth = FaultProxy(devnet.bsc_url or ""), FaultProxy(devnet.eth_url or "")
    await bsc.start()
    await eth.start()
    try:
        eth_url = devnet.eth_url or ""
        await evm.mine(
            devnet.bsc_url or "",
            max(0, await head(eth_url) - await head(devnet.bsc_url or "")) + 30,
        )
        base = devnet_network("ethereum-devnet", eth_url, start_height=await head(eth_url) + 1)
        network = two_endpoints(base, ("bsc-standin", bsc.url, 1), ("anvil", eth.url, 1))
        async with gateway(network, db, ledger_url, on_wrong_chain=wrong_chain_alerts(db)) as gw:
            assert gw.pool is not None
            await pay(devnet, gw, "nora", 2 * ETH, 5 * NEXO)
            assert await gw.pool.best_head() == await head(eth_url)
            await gw.sync()
            await gw.deliver()
            assert await gw.balances("nora") == {"ETH": 2 * ETH, "NEXO": 5 * NEXO}
            health = {h.name: h for h in gw.pool.health_snapshot()}
            assert health["bsc-standin"].chain_check is ChainCheck.MISMATCH
            assert health["bsc-standin"].benched_reason == "wrong_chain"
            assert not health["bsc-standin"].healthy and health["bsc-standin"].head is None
            assert health["anvil"].chain_check is ChainCheck.OK
            assert health["anvil"].healthy and health["anvil"].lag == 0
        # Asked who it is, never asked for data.
        assert set(bsc.seen.methods) == {"eth_chainId"}
        alerts = [a for a in await gw.alerts() if a["kind"] == WRONG_CHAIN_KIND]
        assert [(a["severity"], a["network"]) for a in alerts] == [("critical", "ethereum-devnet")]
        assert "bsc-standin" in alerts[0]["message"] and "31338" in alerts[0]["message"]
    finally:
        await bsc.stop()
        await eth.stop()


async def test_truncated_get_logs_is_refetched_from_an_honest_endpoint(
    devnet: DevnetState, gw: Gateway, proxies: tuple[FaultProxy, FaultProxy]
) -> None:
    alpha, beta = proxies
    alpha.faults.drop_logs = True  # a backend whose log index lost these blocks
    await pay(devnet, gw, "olga", 1 * ETH, 7 * NEXO)
    with structlog.testing.capture_logs() as logs:
        await gw.sync()
    await gw.deliver()
    assert await gw.balances("olga") == {"ETH": 1 * ETH, "NEXO": 7 * NEXO}
    assert alpha.seen.methods["eth_getLogs"] >= 2  # the range, then the block by hash
    assert beta.seen.methods["eth_getLogs"] >= 1  # ... which the honest endpoint served
    assert any(e["event"] == "evm_logs_incomplete" for e in logs)
    failed = [e for e in logs if e["event"] == "endpoint_failed"]
    assert {(e["endpoint"], e["error"]) for e in failed} == {("alpha", "IncompleteLogsError")}
    assert bad_data_errors(gw, "alpha") >= 1 and bad_data_errors(gw, "beta") == 0


async def test_receipts_without_their_logs_are_refetched_from_an_honest_endpoint(
    devnet: DevnetState, gw: Gateway, proxies: tuple[FaultProxy, FaultProxy]
) -> None:
    # The dense path (issue 9): Transfer logs taken from every block's receipts, no eth_getLogs.
    alpha, beta = proxies
    gw.watcher.adapter.log_source = LogSource(threshold=0.0)  # type: ignore[attr-defined]
    alpha.faults.drop_receipt_logs = True
    await pay(devnet, gw, "rita", 1 * ETH, 6 * NEXO)
    with structlog.testing.capture_logs() as logs:
        await gw.sync()
    await gw.deliver()
    assert await gw.balances("rita") == {"ETH": 1 * ETH, "NEXO": 6 * NEXO}
    assert alpha.seen.methods["eth_getLogs"] == beta.seen.methods["eth_getLogs"] == 0
    assert beta.seen.methods["eth_getBlockReceipts"] >= 1  # the honest endpoint served them
    failed = [e for e in logs if e["event"] == "endpoint_failed"]
    assert {(e["endpoint"], e["error"]) for e in failed} == {("alpha", "IncompleteLogsError")}
    assert bad_data_errors(gw, "alpha") >= 1 and bad_data_errors(gw, "beta") == 0


@pytest.mark.parametrize(
    ("fault", "error"), [("drop_logs", IncompleteLogsError), ("malformed_block", ChainDataError)]
)
async def test_what_no_endpoint_serves_right_stops_the_cursor(
    devnet: DevnetState,
    gw: Gateway,
    proxies: tuple[FaultProxy, FaultProxy],
    fault: str,
    error: type[Exception],
) -> None:
    await gw.sync()
    before = await cursor(gw)
    for proxy in proxies:
        setattr(proxy.faults, fault, True)
    user = f"pete-{fault}"
    await pay(devnet, gw, user, 1 * ETH, 3 * NEXO)
    for _ in range(2):
        with pytest.raises(error):  # a chain-data error, never KeyError/TypeError
            await gw.step()
        assert await cursor(gw) == before
    for proxy in proxies:
        proxy.reset()
    await gw.sync()
    await gw.deliver()
    assert await gw.balances(user) == {"ETH": 1 * ETH, "NEXO": 3 * NEXO}


@pytest.mark.parametrize("fault", ["malformed_block", "wrong_hash"])
async def test_a_lying_endpoint_is_failed_over_and_pays_for_it(
    devnet: DevnetState, gw: Gateway, proxies: tuple[FaultProxy, FaultProxy], fault: str
) -> None:
    alpha, _ = proxies
    setattr(alpha.faults, fault, True)
    user = f"quin-{fault}"
    await pay(devnet, gw, user, 4 * ETH, 2 * NEXO)
    # The real run loop: a step that read from the liar (its head and fork check are pinned to
    # one endpoint) fails and is retried; the liar, benched for it, is not asked first again.
    stop = asyncio.Event()
    runner = asyncio.create_task(gw.watcher.run(stop))

    async def credited() -> bool:
        await gw.deliver()
        return await gw.balances(user) == {"ETH": 4 * ETH, "NEXO": 2 * NEXO}

    try:
        await until(credited, 60)
    finally:
        stop.set()
        await asyncio.wait_for(runner, timeout=15)
    assert bad_data_errors(gw, "alpha") >= 1 and bad_data_errors(gw, "beta") == 0


async def test_chaingate_run_takes_a_wrong_chain_endpoint_out_and_credits_from_the_real_one(
    devnet: DevnetState, database: str, ledger_url: str, eth: Gateway, tmp_path: Path
) -> None:
    """`chaingate run` as a real process with the BSC stand-in listed as an Ethereum endpoint."""
    url, token = devnet.eth_url or "", devnet.eth_token or ""
    bsc = FaultProxy(devnet.bsc_url or "")
    await bsc.start()
    address = await eth.address("uma")
    start = await head(url) + 1
    await evm.send_eth(url, SENDER, address, 3 * ETH)
    await evm.token_transfer(url, token, SENDER, address, 4 * NEXO)
    await evm.mine(url, 4)
    chains = tmp_path / "chains"
    chains.mkdir()
    toml = (PROJECT_ROOT / "chains/devnet/ethereum-devnet.toml").read_text()
    toml = toml.replace("start_height = 0", f"start_height = {start}")
    toml += '\n[[endpoints]]\nname = "bsc-standin"\nurl_env = "BSC_STANDIN_RPC"\n'
    (chains / "ethereum-devnet.toml").write_text(toml)
    env = {
        **os.environ,
        "CHAINGATE_CHAINS_DIR": str(chains),
        "CHAINGATE_DATABASE_URL": database,
        "CHAINGATE_ETHEREUM_DEVNET_RPC": url,
        "BSC_STANDIN_RPC": bsc.url,
        "CHAINGATE_LEDGER_URL": ledger_url,
        "CHAINGATE_LEDGER_SECRET": LEDGER_SECRET.decode(),
        "CHAINGATE_LOG_FORMAT": "json",
    }
    cmd = [sys.executable, "-m", "chaingate.cli", "run", "--roles", "watchers,dispatcher"]
    proc = await asyncio.create_subprocess_exec(
        *cmd, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:

        async def credited() -> bool:
            return await eth.balances("uma") == {"ETH": 3 * ETH, "NEXO": 4 * NEXO}

        await until(credited, 60)
        await until(lambda: _has_alert(eth), 10)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=20)
        await bsc.stop()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert set(bsc.seen.methods) == {"eth_chainId"}  # asked who it is, never asked for data
    assert b"endpoint_wrong_chain" in err


async def _has_alert(gw: Gateway) -> bool:
    return any(a["kind"] == WRONG_CHAIN_KIND for a in await gw.alerts())
