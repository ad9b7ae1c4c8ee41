"""The multi-endpoint fault harness through `chaingate run` (SPEC section 13, issue 8 "Tests"):
a real process watching real nodes through fault proxies, checked at the reference ledger.

Ethereum: two endpoints, one honest and one, asked first, that lies as a lagging backend (its
head a few blocks low, nothing served above it), a truncated eth_getLogs (every answer empty)
or a malformed block (no transaction list). Bitcoin: the only
endpoint keeps answering a stale mempool that still holds the mined deposit. Every deposit is
credited exactly once, nothing is reversed. (The wrong-chain endpoint through `chaingate run`
is tests/test_endpoint_faults.py; a leader frozen past its lease, tests/test_fencing_processes.py.)
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from chaindrivers.bitcoin import ltc_rpc
from chaindrivers.evm import E18 as ETH
from chaindrivers.evm import E18 as NEXO
from chaindrivers.evm import SENDER, head
from chaingate.devnet import evm_contracts as evm
from chaingate.devnet.manager import DevnetState
from chaingate.settings import PROJECT_ROOT
from faultproxy import FaultProxy, Faults, running_proxy
from harness import LEDGER_SECRET, Gateway, devnet_network, gateway, until
from test_deposits_evm import database, eth, ledger_url

__all__ = ["database", "eth", "ledger_url"]  # a gateway on the same database and ledger

ENDPOINT = '\n[[endpoints]]\nname = "{name}"\nurl_env = "{env}"\nrate_limit = 1000.0\n'


@asynccontextmanager
async def chaingate_run(
    tmp_path: Path, database: str, ledger_url: str, tomls: dict[str, str], urls: dict[str, str]
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`chaingate run --roles watchers,dispatcher` on the networks ``tomls`` describes."""
    chains = tmp_path / "chains"
    chains.mkdir()
    for name, text in tomls.items():
        (chains / f"{name}.toml").write_text(text)
    env = {
        **os.environ,
        **urls,
        "CHAINGATE_CHAINS_DIR": str(chains),
        "CHAINGATE_DATABASE_URL": database,
        "CHAINGATE_LEDGER_URL": ledger_url,
        "CHAINGATE_LEDGER_SECRET": LEDGER_SECRET.decode(),
        "CHAINGATE_LOG_FORMAT": "json",
    }
    cmd = [sys.executable, "-m", "chaingate.cli", "run", "--roles", "watchers,dispatcher"]
    log = (tmp_path / "run.log").open("w")
    proc = await asyncio.create_subprocess_exec(
        *cmd, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=30)
        log.close()
    assert proc.returncode == 0, (tmp_path / "run.log").read_text()[-2000:]


def devnet_toml(name: str, start: int) -> str:
    text = (PROJECT_ROOT / f"chains/devnet/{name}.toml").read_text()
    return text.replace("start_height = 0", f"start_height = {start}")


async def nothing_reversed(gw: Gateway) -> None:
    kinds = {r["kind"] for r in await gw.db.fetch("SELECT kind FROM ledger_outbox")}
    assert kinds == {"credit"}


@pytest.mark.parametrize(
    "fault",
    [
        Faults(lag=3),  # a lagging backend: its head 3 blocks low, nothing served above it
        Faults(drop_logs=True),  # a backend whose log index lost these blocks
        Faults(malformed_block=True),  # blocks without their transaction list
    ],
    ids=["lagging", "truncated_logs", "malformed_block"],
)
async def test_ethereum_endpoint_faults_under_chaingate_run(
    devnet: DevnetState,
    database: str,
    ledger_url: str,
    eth: Gateway,
    tmp_path: Path,
    fault: Faults,
) -> None:
    """The liar is weighted far above the honest endpoint, so a fresh process asks it first."""
    url, token = devnet.eth_url or "", devnet.eth_token or ""
    toml = devnet_toml("ethereum-devnet", await head(url) + 1)
    toml = toml.replace("max_batch = 100", "max_batch = 100\nweight = 1000")
    toml += ENDPOINT.format(name="honest", env="HONEST_RPC")
    async with running_proxy(url) as liar, running_proxy(url) as honest:
        liar.faults = fault
        urls = {"CHAINGATE_ETHEREUM_DEVNET_RPC": liar.url, "HONEST_RPC": honest.url}
        async with chaingate_run(tmp_path, database, ledger_url, {"ethereum-devnet": toml}, urls):
            await pay_and_wait(eth, url, token, "lena", 2 * ETH, 3 * NEXO)
            asked = liar.seen.methods["eth_blockNumber"]
            await evm.mine(url, 2)  # more steps with the liar, above the credited deposit
            await until(lambda: _asked(liar, "eth_blockNumber", asked + 3), 30)
        assert liar.seen.methods["eth_getBlockByNumber"]  # it was asked, and answered its way
    assert await eth.balances("lena") == {"ETH": 2 * ETH, "NEXO": 3 * NEXO}
    assert len(await eth.credits("lena")) == 2
    await nothing_reversed(eth)


async def pay_and_wait(gw: Gateway, url: str, token: str, user: str, eth: int, nexo: int) -> None:
    address = await gw.address(user)
    await evm.send_eth(url, SENDER, address, eth)
    await evm.token_transfer(url, token, SENDER, address, nexo)
    await evm.mine(url, 6)  # past the confirmations even as a backend 3 blocks behind sees it

    async def credited() -> bool:
        return await gw.balances(user) == {"ETH": eth, "NEXO": nexo}

    await until(credited, 60)


async def _asked(proxy: FaultProxy, method: str, times: int) -> bool:
    return proxy.seen.methods[method] >= times


async def test_bitcoin_stale_mempool_under_chaingate_run(
    devnet: DevnetState, db: Any, database: str, ledger_url: str, tmp_path: Path
) -> None:
    async with ltc_rpc(devnet) as ltc, running_proxy(devnet.ltc_rpc_url or "") as proxy:
        await ltc.mine(1)  # an earlier test's leftovers, below our start height
        start = int(await ltc.call("getblockcount", wallet=False)) + 1
        network = devnet_network("bitcoin-devnet", proxy.url, start_height=start)
        async with gateway(network, db, ledger_url) as btc:
            address = await btc.address("mona")
            txid = await ltc.send_to_script(address, 2_500_000)
            async with chaingate_run(
                tmp_path,
                database,
                ledger_url,
                {"bitcoin-devnet": devnet_toml("bitcoin-devnet", start)},
                {"CHAINGATE_BITCOIN_DEVNET_RPC": proxy.url},
            ):
                await until(lambda: _status(btc, "mona", "seen"), 60)
                # This backend keeps answering the mempool it had: the tx, mined meanwhile.
                proxy.faults.frozen_mempool = [txid]
                await ltc.mine(network.confirmations)
                mempool_asks = proxy.seen.methods["getrawmempool"]
                await until(lambda: _balance(btc, "mona", 2_500_000), 60)
                # Still credited after more passes over the stale mempool.
                await until(lambda: _asked(proxy, "getrawmempool", mempool_asks + 3), 30)
            [deposit] = await btc.deposits("mona")
            assert deposit["status"] == "credited" and deposit["block_number"] is not None
            assert len(await btc.credits("mona")) == 1
            await nothing_reversed(btc)


async def _status(gw: Gateway, user: str, status: str) -> bool:
    return [d["status"] for d in await gw.deposits(user)] == [status]


async def _balance(gw: Gateway, user: str, amount: int) -> bool:
    return await gw.balances(user) == {"BTC": amount}
