"""The deposit rules of SPEC section 5, one suite run against EVM (anvil), Bitcoin (litecoind)
and TRON (the project's devnet) through a small driver per chain (tests/chaindrivers).

Every assertion is about what a user (the API) or the ledger (the reference ledger's balances)
sees. Each test starts its watcher at the next block on a fresh database, so tests sharing the
session's nodes do not see each other's deposits (one database and one reference ledger per
module, emptied before each test: creating and dropping databases was most of a test's cost). Rules that only one chain has (Bitcoin's mempool and RBF, TRON's solidity, EVM internal
transfers, token quirks, a payout re-mined with another log layout) are tested in
test_deposits_{evm,bitcoin,tron}.py.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

import emptied_fixtures
from chaindrivers import CONFIRMATIONS, ChainDriver
from chaindrivers.bitcoin import bitcoin_driver
from chaindrivers.evm import EvmDriver
from chaindrivers.tron import TronDriver, tron_node
from chaingate.devnet.manager import DevnetState
from chaingate.domain import Network
from harness import Gateway, by_txid, gateway, interrupted_step, settle

# One database and one reference ledger per module, emptied before each test.
database = emptied_fixtures.database
ledger_url = emptied_fixtures.ledger_url

# One payment per chain, comfortably above each minimum deposit (base units).
AMOUNT = {"evm": 2 * 10**18, "bitcoin": 3_000_000, "tron": 4_000_000}
TOKEN_AMOUNT = {"evm": 250 * 10**18, "tron": 7_000_001}


@pytest.fixture
def user() -> str:
    return f"u-{secrets.token_hex(4)}"


@pytest.fixture(params=["evm", "bitcoin", "tron"])
async def driver(request: pytest.FixtureRequest, devnet: DevnetState) -> AsyncIterator[ChainDriver]:
    if request.param == "evm":
        yield EvmDriver(devnet)
    elif request.param == "bitcoin":
        async with bitcoin_driver(devnet) as btc:
            yield btc
    else:
        async with tron_node(devnet) as node:
            yield TronDriver(devnet, node)


@pytest.fixture
async def network(driver: ChainDriver) -> Network:
    return await driver.network()


@pytest.fixture
async def gw(network: Network, db: asyncpg.Pool, ledger_url: str) -> AsyncIterator[Gateway]:
    async with gateway(network, db, ledger_url) as gw:
        yield gw


# --- confirmations -----------------------------------------------------------------------------
async def test_deposits_are_credited_once_after_their_confirmations(
    gw: Gateway, driver: ChainDriver, user: str
) -> None:
    address = await gw.address(user)
    assert address == await gw.address(user)  # the same address every time
    assert address != await gw.address(f"{user}-other")
    amount = AMOUNT[driver.kind]
    coin = await driver.pay(address, amount)
    token = await driver.pay_token(address, TOKEN_AMOUNT[driver.kind]) if driver.token else None
    await settle(gw)
    # The coin has 2 confirmations once the token's block is mined, the token 1: neither is
    # credited before its own count.
    expected = {coin: "confirming"} if token is None else {coin: "credited", token: "confirming"}
    assert {t: d["status"] for t, d in (await by_txid(gw, user)).items()} == expected
    if token is None:
        assert await gw.balances(user) == {}

    await driver.mine(CONFIRMATIONS)
    for _ in range(3):  # repeated steps and deliveries change nothing
        await settle(gw)
    deposits = await by_txid(gw, user)
    assert {d["status"] for d in deposits.values()} == {"credited"}
    balances = {driver.native: amount}
    if token is not None and driver.token is not None:
        balances[driver.token] = TOKEN_AMOUNT[driver.kind]
    assert await gw.balances(user) == balances
    assert len(await gw.credits(user)) == len(balances)


# --- refused deposits --------------------------------------------------------------------------
async def test_refused_deposits_are_recorded_with_their_reason_and_never_credited(
    gw: Gateway, driver: ChainDriver, user: str
) -> None:
    """Dust, a failed transaction and unlisted (look-alike) tokens are recorded as rejected with
    their reason; a payment to an address never issued is not ours to record. Unlisted tokens
    alert once per contract and day (spam arrives by the thousand), every transfer counted."""
    address, other = await gw.address(user), await gw.address(f"{user}-b")
    dust = await driver.pay(address, driver.dust)
    # An address of the same xpub far ahead: ours to derive, never issued to anyone.
    unissued = gw.watcher.adapter.addresses.derive(5_000).address
    stray = await driver.pay(unissued, AMOUNT[driver.kind])
    expected = {dust: ("rejected", "dust")}
    unlisted: list[str] = []
    if driver.token is not None:  # Bitcoin has no failing transactions and no tokens
        failed = await driver.pay_failed(address, TOKEN_AMOUNT[driver.kind])
        first, contract = await driver.pay_unlisted(address, 4_000_000)
        second, _ = await driver.pay_unlisted(other, 5_000_000)
        expected |= {
            failed: ("rejected", "failed_tx"),
            first: ("rejected", "unlisted_token"),
        }
        unlisted = [first, second]
    await driver.mine(CONFIRMATIONS)
    await settle(gw)

    deposits = await by_txid(gw, user)
    assert {t: (d["status"], d["reason"]) for t, d in deposits.items()} == expected
    assert int(deposits[dust]["amount"]) == driver.dust
    rows = {r["txid"] for r in await gw.db.fetch("SELECT txid FROM deposits")}
    assert stray not in rows
    assert await gw.balances(user) == {} and await gw.balances(f"{user}-b") == {}
    alerts = await gw.alerts()  # dust and failed transactions are not wrong-network cases
    if not unlisted:
        assert alerts == []
        return
    assert (deposits[unlisted[0]]["asset"], deposits[unlisted[0]]["contract"]) == (None, contract)
    [alert] = alerts  # two transfers of one unlisted contract: one alert
    assert (alert["kind"], alert["severity"]) == ("unlisted_token", "warning")
    assert (alert["txid"], alert["details"]["contract"]) == (unlisted[0], contract)
    counted = gw.watcher.metrics.registry.get_sample_value(
        "chaingate_unlisted_token_transfers_total", {"network": gw.network.name}
    )
    assert counted == 2  # every transfer counted


# --- reorgs ------------------------------------------------------------------------------------
async def test_a_reorg_before_credit_orphans_the_deposit(
    gw: Gateway, driver: ChainDriver, user: str
) -> None:
    address = await gw.address(user)
    mark = await driver.mark()
    txid = await driver.pay(address, AMOUNT[driver.kind])
    await settle(gw)
    assert (await by_txid(gw, user))[txid]["status"] == "confirming"

    await driver.reorg(mark, remine=False)  # the payment is gone for good
    await driver.mine(CONFIRMATIONS)
    await settle(gw)
    deposit = (await by_txid(gw, user))[txid]
    assert (deposit["status"], deposit["reason"]) == ("orphaned", "reorg")
    assert await gw.credits(user) == []
    assert await gw.balances(user) == {}
    assert await gw.alerts() == []


@pytest.mark.parametrize("remine", [False, True], ids=["gone", "mined-again"])
async def test_a_reorg_after_credit_reverses_alerts_and_credits_once_when_mined_again(
    gw: Gateway, driver: ChainDriver, user: str, remine: bool
) -> None:
    address = await gw.address(user)
    amount = AMOUNT[driver.kind]
    mark = await driver.mark()
    txid = await driver.pay(address, amount)
    await driver.mine(CONFIRMATIONS)
    await settle(gw)
    assert await gw.balances(user) == {driver.native: amount}

    # The payment's block leaves the chain; "mined-again": the same transaction is in the new
    # branch, at another height.
    await driver.reorg(mark, remine=remine)
    await driver.mine(CONFIRMATIONS)
    await settle(gw)
    [alert] = await gw.alerts()
    assert (alert["kind"], alert["severity"]) == ("reorg_reversal", "critical")
    assert (alert["txid"], int(alert["amount"]), alert["user_id"]) == (txid, amount, user)
    deposit = (await by_txid(gw, user))[txid]
    credits = await gw.credits(user)
    if remine:  # reversed, then credited anew under a new key: once in the balance
        assert deposit["status"] == "credited"
        assert sorted(c["reversed"] for c in credits) == [False, True]
        assert len({c["credit_key"] for c in credits}) == 2
        assert await gw.balances(user) == {driver.native: amount}
    else:
        assert (deposit["status"], deposit["reason"]) == ("reversed", "reorg")
        assert [c["reversed"] for c in credits] == [True]
        assert await gw.balances(user) == {driver.native: 0}


# --- restarts ----------------------------------------------------------------------------------
# Wider than harness.CUT_AFTER at the top: an EVM step (blocks, logs, receipts, traces) can
# outlast 50 ms on a busy machine, and the cuts must also land in its later stages.
CUTS = (0, 0.005, 0.03, 0.1, 0.3)


async def test_restart_at_any_point_repeats_nothing(
    network: Network, db: asyncpg.Pool, ledger_url: str, driver: ChainDriver, user: str
) -> None:
    users = [f"{user}-{i}" for i in range(2)]
    async with gateway(network, db, ledger_url) as gw:
        addresses = {u: await gw.address(u) for u in users}
    finished = 0
    for round_no, u in enumerate(users):
        # Payments keep arriving while the gateway is killed again and again at every stage of
        # a step (reading the head, scanning, storing, crediting) and of a delivery.
        await driver.pay(addresses[u], AMOUNT[driver.kind] + round_no)
        for delay in CUTS:
            async with gateway(network, db, ledger_url) as gw:  # a new process: a new Watcher
                finished += await interrupted_step(gw, delay)
    assert 0 < finished < len(users) * len(CUTS)  # some steps were cut short, some got through

    await driver.mine(CONFIRMATIONS)
    # A killed dispatcher's claimed rows come back when its lease (30 s) runs out; skip the wait.
    await db.execute("UPDATE ledger_outbox SET next_attempt_at = now() WHERE delivered_at IS NULL")
    async with gateway(network, db, ledger_url) as gw:
        await settle(gw)
        for round_no, u in enumerate(users):
            [credit] = await gw.credits(u)
            assert not credit["reversed"]
            assert await gw.balances(u) == {driver.native: AMOUNT[driver.kind] + round_no}
            assert {d["status"] for d in await gw.deposits(u)} == {"credited"}
        undelivered = "SELECT count(*) FROM ledger_outbox WHERE delivered_at IS NULL"
        assert await db.fetchval(undelivered) == 0
        assert await gw.alerts() == []
