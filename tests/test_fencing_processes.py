"""Two `chaingate run` instances on one network: a deposed leader's stale rollback is refused
(SPEC section 5, issue 8 item 7), checked at the reference ledger.

Instance A leads and credits a deposit. A real reorg drops it; A sees the fork and, while it
reads the fork a second time (its fault proxy holds that one answer), is frozen (SIGSTOP) past
its lease. Instance B takes the lease, handles the same reorg (the dropped deposit is reversed,
rightly) and credits a new deposit above the fork. A is thawed mid-step with the fork it read
before: its rollback would reverse B's new credit. The lease check and the cursor's
compare-and-set refuse it; with both removed, the ledger sees that credit reversed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chaindrivers.evm import E18 as ETH
from chaindrivers.evm import SENDER, head, rpc
from chaingate.devnet import evm_contracts as evm
from chaingate.devnet.manager import DevnetState
from chaingate.settings import PROJECT_ROOT
from faultproxy import running_proxy
from harness import LEDGER_SECRET, Gateway, until
from test_deposits_evm import database, eth, ledger_url

__all__ = ["database", "eth", "ledger_url"]  # a gateway on the same database and ledger

LEASE = "watcher:ethereum-devnet"
LEASE_SECONDS = 2.0


def chains_dir(tmp_path: Path, start: int) -> Path:
    """ethereum-devnet alone, from ``start``; the endpoint's timeout outlasts the freeze, so the
    thawed leader's held read completes instead of timing out (which would fail its step before
    it tried to write, and prove nothing)."""
    chains = tmp_path / "chains"
    chains.mkdir()
    toml = (PROJECT_ROOT / "chains/devnet/ethereum-devnet.toml").read_text()
    toml = toml.replace("start_height = 0", f"start_height = {start}")
    toml = toml.replace("timeout = 5.0", "timeout = 120.0")
    (chains / "ethereum-devnet.toml").write_text(toml)
    return chains


class Instance:
    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def saw(self, event: str) -> bool:
        return any(e.get("event") == event for e in self.events())


async def start_instance(env: dict[str, str], rpc_url: str, log: Path, roles: str) -> Instance:
    cmd = [sys.executable, "-m", "chaingate.cli", "run", "--roles", roles]
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        env={**env, "CHAINGATE_ETHEREUM_DEVNET_RPC": rpc_url},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    return Instance(proc, log)


async def leader_pid(gw: Gateway) -> int | None:
    holder = await gw.db.fetchval(
        "SELECT holder FROM leases WHERE name = $1 AND expires_at > clock_timestamp()", LEASE
    )
    return None if holder is None else int(str(holder).split(":")[1])


@pytest.fixture
async def instances(
    devnet: DevnetState, database: str, ledger_url: str, eth: Gateway, tmp_path: Path
) -> AsyncIterator[tuple[Instance, Instance, Any]]:
    url = devnet.eth_url or ""
    env = {
        **os.environ,
        "CHAINGATE_CHAINS_DIR": str(chains_dir(tmp_path, await head(url) + 1)),
        "CHAINGATE_DATABASE_URL": database,
        "CHAINGATE_LEDGER_URL": ledger_url,
        "CHAINGATE_LEDGER_SECRET": LEDGER_SECRET.decode(),
        "CHAINGATE_LOG_FORMAT": "json",
        "CHAINGATE_WATCHER_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    async with running_proxy(url) as proxy:
        first = await start_instance(env, proxy.url, tmp_path / "a.log", "watchers")
        running = [first]
        try:
            await until(lambda: _leads(eth, first), 60)
            second = await start_instance(env, url, tmp_path / "b.log", "watchers,dispatcher")
            running.append(second)
            yield first, second, proxy
        finally:
            proxy.release.set()
            for instance in running:
                if instance.proc.returncode is None:
                    instance.proc.send_signal(signal.SIGCONT)
                    instance.proc.send_signal(signal.SIGTERM)
            for instance in running:
                await asyncio.wait_for(instance.proc.wait(), timeout=30)


async def _leads(gw: Gateway, instance: Instance) -> bool:
    return await leader_pid(gw) == instance.proc.pid


async def test_a_frozen_leader_thawed_mid_rollback_reverses_nothing_of_its_successor(
    devnet: DevnetState, eth: Gateway, instances: tuple[Instance, Instance, Any]
) -> None:
    first, second, proxy = instances
    url = devnet.eth_url or ""
    mark, fork = await rpc(url, "evm_snapshot"), await head(url)

    # A credits a deposit (B's dispatcher delivers it), then a reorg drops it.
    dropped = await eth.address("ada")
    await evm.send_eth(url, SENDER, dropped, 2 * ETH)
    await evm.mine(url, 3)
    await until(lambda: _balance(eth, "ada", 2 * ETH), 60)
    tip = await eth.db.fetchval("SELECT height FROM chain_cursor")
    assert await rpc(url, "evm_revert", mark)
    await evm.mine(url, tip - fork + 2)  # the new branch is longer: A's tip height exists on it

    # A reads its tip on the new branch (the fork), then again to confirm it: held there.
    proxy.faults.hold_skip, proxy.faults.hold_block = 1, tip
    await asyncio.wait_for(proxy.holding.wait(), timeout=60)
    first.proc.send_signal(signal.SIGSTOP)  # frozen mid-step: its lease is not renewed
    await until(lambda: _leads(eth, second), 60)

    # B handles the reorg and credits a new deposit above the fork.
    await until(lambda: _balance(eth, "ada", 0), 60)
    kept = await eth.address("bea")
    await evm.send_eth(url, SENDER, kept, 3 * ETH)
    await evm.mine(url, 3)
    await until(lambda: _balance(eth, "bea", 3 * ETH), 60)
    [credit] = await eth.credits("bea")
    assert credit["block_number"] > fork

    # A thaws with the fork it read before B's work: its rollback must be refused.
    proxy.release.set()
    first.proc.send_signal(signal.SIGCONT)
    await until(lambda: _stepped_down_or_rolled_back(first), 60)
    await evm.mine(url, 1)
    await until(_delivered(eth), 60)
    assert [(c["amount"], c["reversed"]) for c in await eth.credits("bea")] == [
        (str(3 * ETH), False)
    ]
    assert await eth.balances("bea") == {"ETH": 3 * ETH}
    kinds = [r["kind"] for r in await eth.db.fetch("SELECT kind FROM ledger_outbox ORDER BY id")]
    assert kinds.count("reversal") == 1  # ada's, by B; none of bea's
    assert not any(e.get("event") == "reorg" for e in first.events())
    assert first.saw("watcher_deposed"), "the thawed leader did not step down"
    assert await leader_pid(eth) == second.proc.pid


async def _balance(gw: Gateway, user: str, amount: int) -> bool:
    return (await gw.balances(user)).get("ETH", 0) == amount


async def _stepped_down_or_rolled_back(instance: Instance) -> bool:
    return any(e.get("event") in ("watcher_deposed", "reorg") for e in instance.events())


def _delivered(gw: Gateway) -> Any:
    async def check() -> bool:
        pending = await gw.db.fetchval(
            "SELECT count(*) FROM ledger_outbox WHERE delivered_at IS NULL"
        )
        return int(pending) == 0

    return check
