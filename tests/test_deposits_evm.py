"""Ethereum deposits end to end on anvil: the watcher, the service API and the reference ledger.

Every test starts its own database and a cursor at the current head of the session's anvil, so
the tests do not see each other's deposits; reorgs are made with evm_snapshot / evm_revert.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import emptied_fixtures
from chaindrivers.evm import head, rpc
from chaingate.devnet import evm_contracts as evm
from chaingate.devnet.manager import DevnetState
from chaingate.ledger.client import LedgerClient
from chaingate.ledger.dispatcher import OutboxDispatcher
from chaingate.settings import PROJECT_ROOT
from harness import LEDGER_SECRET, Gateway, devnet_network, gateway

# One database and one reference ledger per module, emptied before each test.
database = emptied_fixtures.database
ledger_url = emptied_fixtures.ledger_url

ETH = 10**18
NEXO = 10**18
SENDER = evm.DEFAULT_SENDER


@pytest.fixture
async def eth(devnet: DevnetState, db: Any, ledger_url: str) -> AsyncIterator[Gateway]:
    network = devnet_network(
        "ethereum-devnet", devnet.eth_url or "", start_height=await head(devnet.eth_url or "") + 1
    )
    # The registry's devnet NEXO address is the one `devnet up` deploys (first contract of
    # account 0 on a fresh anvil); if these ever differ the demo credits nothing.
    assert network.asset("NEXO").contract == (devnet.eth_token or "").lower()
    async with gateway(network, db, ledger_url) as gw:
        yield gw


async def test_refused_deposits_are_recorded_with_their_reason(
    eth: Gateway, devnet: DevnetState
) -> None:
    url, token = devnet.eth_url or "", devnet.eth_token or ""
    address = await eth.address("frank")
    lookalike = await evm.deploy_dev_token(url, "Nexo", "NEXO", 18, 10**6 * NEXO)
    await evm.token_transfer(url, lookalike, SENDER, address, 100 * NEXO)
    try:
        await evm.set_fail_mode(url, token, 2)  # transfer reverts
        await evm.token_transfer(url, token, SENDER, address, 7 * NEXO, gas=200_000)
        await evm.set_fail_mode(url, token, 1)  # transfer returns false, moves nothing
        await evm.token_transfer(url, token, SENDER, address, 9 * NEXO)
    finally:
        await evm.set_fail_mode(url, token, 0)
    await evm.send_eth(url, SENDER, address, 1000)  # dust: below 0.001 ETH
    await evm.mine(url, 5)
    await eth.sync()
    await eth.deliver()
    rows = await eth.deposits("frank")
    reasons = sorted((r["reason"], r["status"]) for r in rows)
    assert reasons == [
        ("dust", "rejected"),
        ("failed_tx", "rejected"),
        ("no_transfer_event", "rejected"),
        ("unlisted_token", "rejected"),
    ]
    assert await eth.balances("frank") == {}
    unlisted = [a for a in await eth.alerts() if a["kind"] == "unlisted_token"]
    assert len(unlisted) == 1 and unlisted[0]["details"]["contract"] == lookalike.lower()
    assert unlisted[0]["severity"] == "warning"


async def test_eth_sent_by_a_contract_is_credited(eth: Gateway, devnet: DevnetState) -> None:
    url = devnet.eth_url or ""
    address = await eth.address("gina")
    forwarder = await evm.deploy_forwarder(url)
    await evm.forward_eth(url, forwarder, SENDER, address, ETH // 5)
    await evm.forward_eth(url, forwarder, SENDER, address, ETH // 3, then_revert=True)
    await evm.mine(url, 3)
    await eth.sync()
    await eth.deliver()
    rows = await eth.deposits("gina")
    assert [(r["status"], r["position"]) for r in rows] == [("credited", "trace:0")]
    assert await eth.balances("gina") == {"ETH": ETH // 5}


async def test_nexo_on_the_bsc_stand_in_raises_a_network_mismatch(
    devnet: DevnetState, db: Any, ledger_url: str
) -> None:
    eth_net = devnet_network("ethereum-devnet", devnet.eth_url or "")
    bsc_url = devnet.bsc_url or ""
    bsc = devnet_network("bsc-devnet", bsc_url, start_height=await head(bsc_url) + 1)
    async with gateway(bsc, db, ledger_url, extra={eth_net.name: eth_net}) as gw:
        address = await gw.address("hana", network="ethereum-devnet")
        await evm.token_transfer(bsc_url, devnet.bsc_token or "", SENDER, address, 40 * NEXO)
        await evm.mine(bsc_url, 4)
        await gw.sync()
        await gw.deliver()
        rows = await gw.deposits("hana")
        assert [(r["status"], r["reason"], r["amount"]) for r in rows] == [
            ("rejected", "watch_only_network", str(40 * NEXO))
        ]
        alerts = [a for a in await gw.alerts() if a["kind"] == "network_mismatch"]
        assert len(alerts) == 1
        assert (alerts[0]["user_id"], alerts[0]["network"], alerts[0]["severity"]) == (
            "hana",
            "bsc-devnet",
            "critical",
        )
        assert await gw.balances("hana") == {}


async def test_a_ledger_that_was_down_receives_every_credit_once(
    eth: Gateway, devnet: DevnetState, ledger_url: str
) -> None:
    url = devnet.eth_url or ""
    address = await eth.address("ivan")
    for i in range(3):
        await evm.send_eth(url, SENDER, address, ETH + i)
    await evm.mine(url, 3)
    await eth.sync()
    dead = "http://127.0.0.1:9"  # discard port: nothing answers
    async with LedgerClient(dead, LEDGER_SECRET, timeout=1) as down:
        stuck = OutboxDispatcher(eth.db, down, base_backoff=0.01, send_attempts=1, retry_wait=0.01)
        assert await stuck.dispatch_once() == 0
    attempts = await eth.db.fetchval("SELECT max(attempts) FROM ledger_outbox")
    assert attempts >= 1
    await eth.db.execute("UPDATE ledger_outbox SET next_attempt_at = now()")
    while await eth.deliver():
        pass
    assert await eth.balances("ivan") == {"ETH": 3 * ETH + 3}
    assert len(await eth.credits("ivan")) == 3


async def test_killing_the_gateway_process_mid_run_credits_once(
    devnet: DevnetState, database: str, ledger_url: str, eth: Gateway, tmp_path: Path
) -> None:
    """`chaingate run` as a real process, SIGKILLed repeatedly while it works."""
    url, token = devnet.eth_url or "", devnet.eth_token or ""
    address = await eth.address("judy")
    start = await head(url) + 1
    for i in range(6):
        await evm.send_eth(url, SENDER, address, ETH + i)
        await evm.token_transfer(url, token, SENDER, address, NEXO + i)
    await evm.mine(url, 4)
    chains = tmp_path / "chains"
    chains.mkdir()
    toml = (PROJECT_ROOT / "chains/devnet/ethereum-devnet.toml").read_text()
    (chains / "ethereum-devnet.toml").write_text(
        toml.replace("start_height = 0", f"start_height = {start}")
    )
    env = {
        **os.environ,
        "CHAINGATE_CHAINS_DIR": str(chains),
        "CHAINGATE_DATABASE_URL": database,
        "CHAINGATE_ETHEREUM_DEVNET_RPC": url,
        "CHAINGATE_LEDGER_URL": ledger_url,
        "CHAINGATE_LEDGER_SECRET": LEDGER_SECRET.decode(),
        "CHAINGATE_LOG_FORMAT": "json",
        "CHAINGATE_OUTBOX_LEASE_SECONDS": "2",  # rows leased by a killed process come back soon
        "CHAINGATE_WATCHER_LEASE_SECONDS": "2",  # and so does the network it was leading
    }
    cmd = [sys.executable, "-m", "chaingate.cli", "run", "--roles", "watchers,dispatcher"]
    for lifetime in (0.8, 1.2, 1.6):
        proc = await asyncio.create_subprocess_exec(
            *cmd, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        await asyncio.sleep(lifetime)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    proc = await asyncio.create_subprocess_exec(
        *cmd, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stderr is not None
    lines: list[bytes] = []

    async def started() -> None:
        async for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if b"service_started" in line:
                return

    try:
        await asyncio.wait_for(started(), timeout=30)
        for _ in range(100):
            if len(await eth.credits("judy")) >= 12:
                break
            await asyncio.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)  # a clean stop this time
        _, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode == 0, (b"".join(lines) + err).decode()[-2000:]
    credits = await eth.credits("judy")
    assert len(credits) == 12
    assert await eth.balances("judy") == {"ETH": 6 * ETH + 15, "NEXO": 6 * NEXO + 15}


async def test_catching_up_in_small_ranges_with_prefetch_survives_a_reorg(
    devnet: DevnetState, db: Any, ledger_url: str
) -> None:
    """scan_batch=2: the watcher stores one range while the next is prefetched; a reorg in
    between must neither credit a dropped deposit nor skip a kept one."""
    url = devnet.eth_url or ""
    network = devnet_network("ethereum-devnet", url, start_height=await head(url) + 1, scan_batch=2)
    async with gateway(network, db, ledger_url) as gw:
        address = await gw.address("nina")
        for i in range(4):  # kept: blocks start .. start+3
            await evm.send_eth(url, SENDER, address, ETH + i)
        snapshot = await rpc(url, "evm_snapshot")
        for i in range(4):  # dropped by the reorg below
            await evm.send_eth(url, SENDER, address, 2 * ETH + i)
        first = await gw.step()  # stores 2 blocks, prefetches the next 2
        assert first.scanned == 2 and not first.caught_up
        assert await rpc(url, "evm_revert", snapshot)
        await evm.mine(url, 10)
        await gw.sync()
        await gw.sync()
        await gw.deliver()
        rows = await gw.deposits("nina")
        assert sorted(int(r["amount"]) for r in rows if r["status"] == "credited") == [
            ETH + i for i in range(4)
        ]
        assert all(r["status"] in ("credited", "orphaned") for r in rows)
        assert await gw.balances("nina") == {"ETH": 4 * ETH + 6}


# --- a transaction mined again at another place ------------------------------------------------
@pytest.mark.parametrize(
    ("layout", "credited_first"),
    [("shifted", False), ("reordered", True)],
)
async def test_a_payout_mined_again_with_another_log_layout_credits_each_recipient_once(
    eth: Gateway, devnet: DevnetState, layout: str, credited_first: bool
) -> None:
    """One payout transaction pays A 100 and B 5 NEXO. A reorg drops it and the very same signed
    bytes are mined again in a block where another transaction's log comes first ("shifted":
    block-global log indexes move by one) or that also makes the contract pay in the opposite
    order ("reordered": what sits at each place inside the transaction changes)."""
    url, token = devnet.eth_url or "", devnet.eth_token or ""
    a, b = await eth.address("pam"), await eth.address("quinn")
    payout = await evm.deploy_payout(url)
    await evm.token_transfer(url, token, SENDER, payout, 105 * NEXO)
    snapshot, fork_height = await rpc(url, "evm_snapshot"), await head(url)
    txid = await evm.pay_out(url, payout, token, SENDER, [(a, 100 * NEXO), (b, 5 * NEXO)])
    if credited_first:
        await evm.mine(url, 3)
    await eth.sync()
    await eth.deliver()
    before = "credited" if credited_first else "confirming"
    assert sorted((d["position"], d["status"]) for d in await eth.deposits()) == [
        ("log:0", before), ("log:1", before),
    ]  # fmt: skip

    raw = await rpc(url, "eth_getRawTransactionByHash", txid)
    old_tip = await head(url)
    assert await rpc(url, "evm_revert", snapshot)
    await rpc(url, "evm_setAutomine", False)
    try:
        other = evm.ANVIL_ACCOUNTS[1]
        await evm.set_payout_reversed(url, payout, other, layout == "reordered", wait=False)
        assert await rpc(url, "eth_sendRawTransaction", raw) == txid
        await rpc(url, "evm_mine")
    finally:
        await rpc(url, "evm_setAutomine", True)
    receipt = await rpc(url, "eth_getTransactionReceipt", txid)
    assert int(receipt["transactionIndex"], 16) == 1  # the other transaction's log comes first
    assert [int(log["logIndex"], 16) for log in receipt["logs"]] == [1, 2]
    await evm.mine(url, old_tip - fork_height + 3)

    await eth.sync()
    while await eth.deliver():
        pass
    assert await eth.balances("pam") == {"NEXO": 100 * NEXO}
    assert await eth.balances("quinn") == {"NEXO": 5 * NEXO}
    for user, amount in (("pam", 100 * NEXO), ("quinn", 5 * NEXO)):
        standing = [c for c in await eth.credits(user) if not c["reversed"]]
        assert [int(c["amount"]) for c in standing] == [amount]  # credited once
    rows = {d["user_id"]: d for d in await eth.deposits() if d["status"] == "credited"}
    # The positions are the places inside the transaction, as the new block has them.
    first, second = ("quinn", "pam") if layout == "reordered" else ("pam", "quinn")
    assert (rows[first]["position"], rows[second]["position"]) == ("log:0", "log:1")
    assert len(await eth.deposits()) == 2  # no row left behind under an old position
