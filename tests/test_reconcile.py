"""Balance reconciliation on anvil: native coin that reached a deposit address without a deposit
the watcher could record (ETH sent by a contract on an endpoint without tracing) is alerted,
funds that left a deposit address are alerted, and everything the deposits explain is quiet.

Each test derives its deposit addresses from its own xpub: the session's anvil is shared, and
addresses of the devnet xpub already hold other tests' deposits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from bitcoinlib.keys import HDKey

from chaindrivers.evm import E18 as ETH
from chaindrivers.evm import SENDER, head, rpc
from chaingate.chains.base import BalanceReader
from chaingate.chains.registry import open_adapter
from chaingate.devnet import evm_contracts as evm
from chaingate.devnet.manager import DevnetState
from chaingate.errors import ProviderError
from chaingate.metrics import ReconcileMetrics
from chaingate.service import run_service
from chaingate.settings import Settings
from chaingate.store import chainstate
from chaingate.watcher.reconcile import Reconciler, Verdict, judge, reconciler_for
from faultproxy import FaultProxy
from harness import DEVNET_CHAINS, Gateway, devnet_network, gateway, until

NETWORK = "ethereum-devnet"
CONFIRMATIONS = 3  # chains/devnet/ethereum-devnet.toml


def own_xpub(request: pytest.FixtureRequest) -> str:
    """An m/44'/60'/0' account xpub of a seed only this test uses."""
    key = HDKey.from_seed(
        hashlib.sha256(request.node.nodeid.encode()).digest(), witness_type="legacy"
    )
    for index in (44, 60, 0):
        key = key.child_private(index, hardened=True)
    return str(key.public().wif_public())


@asynccontextmanager
async def eth_gateway(
    devnet: DevnetState, db: Any, ledger_url: str, request: pytest.FixtureRequest, **overrides: Any
) -> AsyncIterator[Gateway]:
    url = devnet.eth_url or ""
    network = devnet_network(
        NETWORK, url, start_height=await head(url) + 1, xpub=own_xpub(request), **overrides
    )
    async with gateway(network, db, ledger_url) as gw:
        yield gw


def reconciler(gw: Gateway, **options: Any) -> Reconciler:
    return Reconciler(gw.watcher.adapter, gw.db, metrics=ReconcileMetrics(), **options)


async def alerts(gw: Gateway, kind: str) -> list[dict[str, Any]]:
    return [a for a in await gw.alerts() if a["kind"] == kind]


async def settle(gw: Gateway, url: str) -> None:
    """Bury the last payment under the confirmations and let the watcher scan it all."""
    await evm.mine(url, CONFIRMATIONS)
    await gw.sync()


async def cursor_of(gw: Gateway) -> int:
    async with gw.db.acquire() as conn:
        value = await chainstate.get_cursor(conn, gw.network.name)
    assert value is not None
    return value


def test_a_mismatch_alerts_once_and_only_its_new_part_again() -> None:
    # Pure rule: (actual, expected, alerted excess, alerted shortfall) -> what to store/alert.
    assert judge(10, 10, 0, 0) == Verdict(0, 0)
    first = judge(12, 10, 0, 0)
    assert (first.kind, first.amount, first.alerted_excess) == ("unexplained_balance", 2, 2)
    assert judge(12, 10, 2, 0).kind is None  # the same excess: nothing new
    more = judge(15, 10, 2, 0)
    assert (more.kind, more.amount, more.alerted_excess) == ("unexplained_balance", 3, 5)
    short = judge(7, 10, 5, 0)
    assert (short.kind, short.amount, short.alerted_shortfall) == ("balance_shortfall", 3, 3)
    assert (short.alerted_excess, judge(7, 10, 0, 3).kind) == (0, None)
    # Part of an excess goes away and comes back: the comeback is news.
    gone = judge(11, 10, 2, 0)
    assert (gone.kind, gone.alerted_excess) == (None, 1)
    back = judge(12, 10, gone.alerted_excess, 0)
    assert (back.kind, back.amount) == ("unexplained_balance", 1)


async def test_eth_from_a_contract_without_tracing_is_alerted_once_per_inflow(
    devnet: DevnetState, db: Any, ledger_url: str, request: pytest.FixtureRequest
) -> None:
    url = devnet.eth_url or ""
    async with eth_gateway(devnet, db, ledger_url, request, tracing=False) as gw:
        address = await gw.address("olga")
        forwarder = await evm.deploy_forwarder(url)
        await evm.forward_eth(url, forwarder, SENDER, address, ETH // 5)
        await settle(gw, url)
        assert await gw.deposits("olga") == []  # the watcher cannot see it without tracing
        rec = reconciler(gw)

        first = await rec.round()
        assert first.checked == 1 and len(first.alerts) == 1
        (alert,) = await alerts(gw, "unexplained_balance")
        assert (alert["severity"], alert["network"], alert["asset"], alert["user_id"]) == (
            "warning",
            NETWORK,
            "ETH",
            "olga",
        )
        assert int(alert["amount"]) == ETH // 5
        details = alert["details"]
        assert (details["address"], details["actual"], details["expected"]) == (
            address,
            str(ETH // 5),
            "0",
        )
        assert details["height"] == first.height

        await settle(gw, url)  # later blocks, same discrepancy
        again = await rec.round()
        assert again.height is not None and first.height is not None
        assert again.height > first.height
        assert again.alerts == [] and len(await alerts(gw, "unexplained_balance")) == 1

        await evm.forward_eth(url, forwarder, SENDER, address, ETH // 3)
        await settle(gw, url)
        third = await rec.round()
        assert len(third.alerts) == 1
        latest = (await alerts(gw, "unexplained_balance"))[-1]
        assert int(latest["amount"]) == ETH // 3  # the new inflow, not the running total
        assert latest["details"]["unexplained"] == str(ETH // 5 + ETH // 3)
        assert latest["details"]["previously_alerted"] == str(ETH // 5)
        assert await alerts(gw, "balance_shortfall") == []
        labels = {"network": NETWORK, "kind": "unexplained_balance"}
        registry = rec.metrics.registry
        assert registry.get_sample_value("chaingate_reconcile_mismatches_total", labels) == 2
        checked = {"network": NETWORK}
        assert (
            registry.get_sample_value("chaingate_reconcile_addresses_checked_total", checked) == 3
        )
        assert await gw.deposits("olga") == []  # nothing is credited automatically


async def test_deposits_the_watcher_recorded_explain_the_balance(
    devnet: DevnetState, db: Any, ledger_url: str, request: pytest.FixtureRequest
) -> None:
    url = devnet.eth_url or ""
    async with eth_gateway(devnet, db, ledger_url, request, tracing=False) as gw:
        alice, bob, carol = [await gw.address(user) for user in ("alice", "bob", "carol")]
        await evm.send_eth(url, SENDER, alice, 3 * ETH // 2)
        await evm.send_eth(url, SENDER, alice, ETH)
        await evm.send_eth(url, SENDER, bob, 1000)  # dust: rejected, but it did arrive
        # A failed transaction to carol: recorded (rejected failed_tx), but nothing moved. Code
        # at her address that always reverts makes the value transfer fail.
        await rpc(url, "anvil_setCode", carol, "0xfe")
        try:
            await rpc(
                url,
                "eth_sendTransaction",
                {"from": SENDER, "to": carol, "value": hex(2 * ETH), "gas": hex(100_000)},
            )
        finally:
            await rpc(url, "anvil_setCode", carol, "0x")
        await settle(gw, url)
        reasons = {
            user: sorted((r["status"], r["reason"]) for r in await gw.deposits(user))
            for user in ("alice", "bob", "carol")
        }
        assert reasons == {
            "alice": [("credited", None), ("credited", None)],
            "bob": [("rejected", "dust")],
            "carol": [("rejected", "failed_tx")],
        }
        rec = reconciler(gw)
        result = await rec.round()
        assert (result.checked, result.alerts) == (3, [])
        assert await alerts(gw, "unexplained_balance") == []
        assert await alerts(gw, "balance_shortfall") == []
        rows = await gw.db.fetch("SELECT actual, expected FROM reconcile_balances ORDER BY 1")
        assert [(int(r["actual"]), int(r["expected"])) for r in rows] == [
            (0, 0),
            (1000, 1000),
            (5 * ETH // 2, 5 * ETH // 2),
        ]


async def test_with_tracing_an_internal_transfer_is_a_deposit_and_nothing_is_alerted(
    devnet: DevnetState, db: Any, ledger_url: str, request: pytest.FixtureRequest
) -> None:
    url = devnet.eth_url or ""
    async with eth_gateway(devnet, db, ledger_url, request, tracing=True) as gw:
        address = await gw.address("gina")
        forwarder = await evm.deploy_forwarder(url)
        await evm.forward_eth(url, forwarder, SENDER, address, ETH // 5)
        await evm.forward_eth(url, forwarder, SENDER, address, ETH // 3, then_revert=True)
        await settle(gw, url)
        rows = await gw.deposits("gina")
        assert [(r["status"], r["position"]) for r in rows] == [("credited", "trace:0")]
        result = await reconciler(gw).round()
        assert (result.checked, result.alerts) == (1, [])
        assert await gw.alerts() == []


async def test_blocks_the_watcher_has_not_scanned_are_not_reconciled(
    devnet: DevnetState, db: Any, ledger_url: str, request: pytest.FixtureRequest
) -> None:
    url = devnet.eth_url or ""
    async with eth_gateway(devnet, db, ledger_url, request, tracing=False) as gw:
        address = await gw.address("hugo")
        await gw.sync()
        scanned = await cursor_of(gw)
        # A plain deposit the watcher WILL record, buried deep, but not scanned yet: reading the
        # balance above the cursor would call it unexplained.
        await evm.send_eth(url, SENDER, address, 2 * ETH)
        await evm.mine(url, 2 * CONFIRMATIONS)
        rec = reconciler(gw)
        early = await rec.round()
        assert early.height is not None and early.height <= scanned
        assert early.alerts == [] and await gw.alerts() == []

        await gw.sync()
        later = await rec.round()
        assert later.height is not None and later.height > scanned
        assert later.height <= await cursor_of(gw)
        assert later.alerts == [] and await gw.alerts() == []
        row = await gw.db.fetchrow("SELECT actual, expected FROM reconcile_balances")
        assert (int(row["actual"]), int(row["expected"])) == (2 * ETH, 2 * ETH)


async def test_funds_leaving_a_deposit_address_are_a_critical_shortfall(
    devnet: DevnetState, db: Any, ledger_url: str, request: pytest.FixtureRequest
) -> None:
    url = devnet.eth_url or ""
    async with eth_gateway(devnet, db, ledger_url, request, tracing=False) as gw:
        address = await gw.address("ivy")
        await evm.send_eth(url, SENDER, address, 2 * ETH)
        await settle(gw, url)
        rec = reconciler(gw)
        assert (await rec.round()).alerts == []

        await rpc(url, "anvil_setBalance", address, hex(ETH // 2))
        await settle(gw, url)
        result = await rec.round()
        assert len(result.alerts) == 1
        (alert,) = await alerts(gw, "balance_shortfall")
        assert (alert["severity"], alert["user_id"], int(alert["amount"])) == (
            "critical",
            "ivy",
            3 * ETH // 2,
        )
        assert (alert["details"]["actual"], alert["details"]["expected"]) == (
            str(ETH // 2),
            str(2 * ETH),
        )
        await settle(gw, url)
        assert (await rec.round()).alerts == []
        assert len(await alerts(gw, "balance_shortfall")) == 1
        assert await alerts(gw, "unexplained_balance") == []


async def test_a_failing_endpoint_fails_the_round_not_the_loop(
    devnet: DevnetState, db: Any, ledger_url: str, request: pytest.FixtureRequest
) -> None:
    url = devnet.eth_url or ""
    proxy = FaultProxy(url)
    await proxy.start()
    try:
        async with (
            eth_gateway(devnet, db, ledger_url, request, tracing=False) as gw,
            open_adapter(devnet_network(NETWORK, proxy.url, tracing=False)) as proxied,
        ):
            address = await gw.address("jack")
            forwarder = await evm.deploy_forwarder(url)
            await evm.forward_eth(url, forwarder, SENDER, address, ETH // 7)
            await settle(gw, url)
            metrics = ReconcileMetrics()
            rec = Reconciler(proxied, gw.db, metrics=metrics, interval=0.05)
            proxy.faults.status = 500
            with pytest.raises(ProviderError):
                await rec.round()

            def failed_rounds() -> float:
                labels = {"network": NETWORK, "error": "NoHealthyEndpointError"}
                value = metrics.registry.get_sample_value(
                    "chaingate_reconcile_round_errors_total", labels
                )
                return value or 0.0

            async def failed_twice() -> bool:
                return failed_rounds() >= 2

            async def alerted() -> bool:
                return len(await alerts(gw, "unexplained_balance")) == 1

            stop = asyncio.Event()
            loop = asyncio.create_task(rec.run(stop))
            try:
                await until(failed_twice)
                assert not loop.done()
                assert await gw.alerts() == []
                proxy.reset()  # the endpoint recovers: the next round does the work
                await until(alerted)
            finally:
                stop.set()
                await asyncio.wait_for(loop, timeout=15)  # stops cleanly, raises nothing
            (alert,) = await alerts(gw, "unexplained_balance")
            assert int(alert["amount"]) == ETH // 7
    finally:
        await proxy.stop()


async def test_the_service_reconciles_every_evm_deposit_network(
    devnet: DevnetState, db: Any, database: str, ledger_url: str, request: pytest.FixtureRequest
) -> None:
    url = devnet.eth_url or ""
    async with eth_gateway(
        devnet, db, ledger_url, request, tracing=False, reconcile_interval=0.1
    ) as gw:
        address = await gw.address("kim")
        forwarder = await evm.deploy_forwarder(url)
        await evm.forward_eth(url, forwarder, SENDER, address, ETH // 9)
        await evm.mine(url, CONFIRMATIONS)
        bsc_url = devnet.bsc_url or ""
        bsc = devnet_network("bsc-devnet", bsc_url, start_height=await head(bsc_url) + 1)
        assert reconciler_for(gw.watcher.adapter, gw.db) is not None
        settings = Settings(
            database_url=database,
            networks={NETWORK: gw.network, bsc.name: bsc},
            chains_dir=DEVNET_CHAINS,
        )
        stop = asyncio.Event()
        service = asyncio.create_task(run_service(settings, ["watchers"], stop))

        async def alerted() -> bool:
            assert not service.done(), service
            return len(await alerts(gw, "unexplained_balance")) == 1

        try:
            await until(alerted)
        finally:
            stop.set()
            await asyncio.wait_for(service, timeout=20)
        (alert,) = await alerts(gw, "unexplained_balance")
        assert (alert["user_id"], int(alert["amount"])) == ("kim", ETH // 9)
        networks = {
            r["network"] for r in await gw.db.fetch("SELECT network FROM reconcile_progress")
        }
        assert networks == {NETWORK}  # the watch-only BSC stand-in issues no addresses


async def test_balances_are_read_at_the_block_the_watcher_scanned(
    devnet: DevnetState, db: Any, ledger_url: str, request: pytest.FixtureRequest
) -> None:
    """After a reorg the watcher has not processed yet, the deposits still describe the old
    branch: comparing them with balances of the new branch would alert a false shortfall."""
    url = devnet.eth_url or ""
    async with eth_gateway(devnet, db, ledger_url, request, tracing=False) as gw:
        address = await gw.address("lena")
        await gw.sync()
        snapshot = await rpc(url, "evm_snapshot")
        await evm.send_eth(url, SENDER, address, 2 * ETH)
        await settle(gw, url)
        rec = reconciler(gw)
        assert (await rec.round()).alerts == []
        assert await rpc(url, "evm_revert", snapshot)
        await evm.mine(url, 4 * CONFIRMATIONS)  # a longer branch without the payment
        with pytest.raises(ProviderError):  # the scanned block is gone: no answer, no guess
            await rec.round()
        await gw.sync()  # the watcher reverses the credited deposit
        assert [r["status"] for r in await gw.deposits("lena")] == ["reversed"]
        result = await rec.round()
        assert result.checked == 1 and result.alerts == []
        assert await alerts(gw, "balance_shortfall") == []


async def test_rounds_rotate_through_every_address(
    devnet: DevnetState, db: Any, ledger_url: str, request: pytest.FixtureRequest
) -> None:
    url = devnet.eth_url or ""
    async with eth_gateway(devnet, db, ledger_url, request, tracing=False) as gw:
        users = ["u0", "u1", "u2"]
        for user in users:
            await gw.address(user)
        forwarder = await evm.deploy_forwarder(url)
        await evm.forward_eth(url, forwarder, SENDER, await gw.address("u2"), ETH // 4)
        await settle(gw, url)
        rec = reconciler(gw, batch=2)
        first, second, third = [await rec.round() for _ in range(3)]
        assert [r.checked for r in (first, second, third)] == [2, 1, 2]
        assert (len(first.alerts), len(second.alerts), len(third.alerts)) == (0, 1, 0)
        assert second.alerts[0].user_id == "u2"
        # The rotation point is stored: a new reconciler (a restart) continues from it.
        assert (await reconciler(gw, batch=2).round()).checked == 1
        sweeps = await gw.db.fetchval("SELECT sweeps FROM reconcile_progress")
        assert sweeps == 2


async def test_evm_balances_are_read_in_batches_the_endpoint_accepts(devnet: DevnetState) -> None:
    url = devnet.eth_url or ""
    proxy = FaultProxy(url)
    await proxy.start()
    try:
        base = devnet_network(NETWORK, proxy.url)
        endpoint = dataclasses.replace(base.endpoints[0], max_batch=2)
        network = dataclasses.replace(base, endpoints=(endpoint,))
        holders = [f"0x{i:040x}" for i in range(0x5001, 0x5006)]
        for i, holder in enumerate(holders):
            await evm.send_eth(url, SENDER, holder, ETH + i)
        height = await head(url)
        await evm.send_eth(url, SENDER, holders[0], ETH)  # after the block read below
        block = await rpc(url, "eth_getBlockByNumber", hex(height), False)
        async with open_adapter(network) as adapter:
            assert isinstance(adapter, BalanceReader)
            by_number = await adapter.native_balances(holders, height)
            by_hash = await adapter.native_balances(holders, height, block["hash"])
            with pytest.raises(ValueError):  # match keys only: lowercase 0x hex
                await adapter.native_balances([holders[0].upper()], height)
        assert by_number == by_hash == {h: ETH + i for i, h in enumerate(holders)}
        assert proxy.seen.methods["eth_getBalance"] == 10
        assert proxy.seen.batch_sizes and max(proxy.seen.batch_sizes) <= 2
    finally:
        await proxy.stop()
