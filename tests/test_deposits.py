"""The deposit rules of SPEC section 5, one suite run against EVM (anvil), Bitcoin (litecoind)
and TRON (the project's devnet) through a small driver per chain (tests/chaindrivers).

Every assertion is about what a user (the API) or the ledger (the reference ledger's balances)
sees. Each test starts its watcher at the next block on a fresh database, so tests sharing the
session's nodes do not see each other's deposits. Rules that only one chain has (Bitcoin's
mempool and RBF, TRON's solidity, EVM internal transfers and token quirks) are tested in
test_deposits_{evm,bitcoin,tron}.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from chaindrivers import CONFIRMATIONS, ChainDriver
from chaindrivers.bitcoin import bitcoin_driver
from chaindrivers.evm import EvmDriver
from chaindrivers.tron import TronDriver, tron_node
from chaingate.devnet.manager import DevnetState
from chaingate.domain import Network
from harness import Gateway, by_txid, gateway, interrupted_step, settle

USER = "alice"
# One payment per chain, comfortably above each minimum deposit (base units).
AMOUNT = {"evm": 2 * 10**18, "bitcoin": 3_000_000, "tron": 4_000_000}
TOKEN_AMOUNT = {"evm": 250 * 10**18, "tron": 7_000_001}


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


def needs_tokens(driver: ChainDriver) -> None:
    if driver.token is None:
        pytest.skip(f"{driver.kind} has no tokens")


# --- confirmations -----------------------------------------------------------------------------
async def test_deposits_are_credited_once_after_their_confirmations(
    gw: Gateway, driver: ChainDriver
) -> None:
    address = await gw.address(USER)
    assert address == await gw.address(USER)  # the same address every time
    assert address != await gw.address("bob")
    amount = AMOUNT[driver.kind]
    coin = await driver.pay(address, amount)
    token = await driver.pay_token(address, TOKEN_AMOUNT[driver.kind]) if driver.token else None
    await settle(gw)
    # The coin has 2 confirmations once the token's block is mined, the token 1: neither is
    # credited before its own count.
    expected = {coin: "confirming"} if token is None else {coin: "credited", token: "confirming"}
    assert {t: d["status"] for t, d in (await by_txid(gw, USER)).items()} == expected
    if token is None:
        assert await gw.balances(USER) == {}

    await driver.mine(CONFIRMATIONS)
    for _ in range(3):  # repeated steps and deliveries change nothing
        await settle(gw)
    deposits = await by_txid(gw, USER)
    assert {d["status"] for d in deposits.values()} == {"credited"}
    balances = {driver.native: amount}
    if token is not None and driver.token is not None:
        balances[driver.token] = TOKEN_AMOUNT[driver.kind]
    assert await gw.balances(USER) == balances
    assert len(await gw.credits(USER)) == len(balances)


# --- refused deposits --------------------------------------------------------------------------
async def test_dust_is_recorded_as_rejected_and_never_credited(
    gw: Gateway, driver: ChainDriver
) -> None:
    txid = await driver.pay(await gw.address(USER), driver.dust)
    await driver.mine(CONFIRMATIONS)
    await settle(gw)
    deposit = (await by_txid(gw, USER))[txid]
    assert (deposit["status"], deposit["reason"]) == ("rejected", "dust")
    assert int(deposit["amount"]) == driver.dust
    assert await gw.balances(USER) == {}
    assert await gw.alerts() == []  # dust is not a wrong-network case


async def test_a_failed_transaction_is_recorded_as_rejected_and_never_credited(
    gw: Gateway, driver: ChainDriver
) -> None:
    if driver.kind == "bitcoin":
        pytest.skip("a Bitcoin transaction is valid or never mined (RBF: test_deposits_bitcoin)")
    txid = await driver.pay_failed(await gw.address(USER), TOKEN_AMOUNT[driver.kind])
    await driver.mine(CONFIRMATIONS)
    await settle(gw)
    deposit = (await by_txid(gw, USER))[txid]
    assert (deposit["status"], deposit["reason"]) == ("rejected", "failed_tx")
    assert await gw.balances(USER) == {}


async def test_an_unlisted_token_is_rejected_and_alerted_once_per_contract_and_day(
    gw: Gateway, driver: ChainDriver
) -> None:
    needs_tokens(driver)
    address, other = await gw.address(USER), await gw.address("bob")
    first, contract = await driver.pay_unlisted(address, 4_000_000)
    second, _ = await driver.pay_unlisted(other, 5_000_000)
    await driver.mine(CONFIRMATIONS)
    await settle(gw)
    for user, txid in ((USER, first), ("bob", second)):
        deposit = (await by_txid(gw, user))[txid]
        assert (deposit["status"], deposit["reason"]) == ("rejected", "unlisted_token")
        assert (deposit["asset"], deposit["contract"]) == (None, contract)
    [alert] = await gw.alerts()  # spam arrives by the thousand: one alert, not one each
    assert (alert["kind"], alert["severity"], alert["txid"]) == ("unlisted_token", "warning", first)
    assert alert["details"]["contract"] == contract
    assert await gw.balances(USER) == {} and await gw.balances("bob") == {}
    counted = gw.watcher.metrics.registry.get_sample_value(
        "chaingate_unlisted_token_transfers_total", {"network": gw.network.name}
    )
    assert counted == 2  # every transfer counted


async def test_payments_to_addresses_never_issued_are_not_recorded(
    gw: Gateway, driver: ChainDriver
) -> None:
    issued = await gw.address(USER)
    # An address of the same xpub one index further on: ours to derive, never issued.
    codec = gw.watcher.adapter.addresses
    unissued = codec.derive(5_000).address
    stray = await driver.pay(unissued, AMOUNT[driver.kind])
    paid = await driver.pay(issued, AMOUNT[driver.kind])
    await driver.mine(CONFIRMATIONS)
    await settle(gw)
    assert set(await by_txid(gw, USER)) == {paid}
    rows = await gw.db.fetch("SELECT txid FROM deposits")
    assert stray not in {r["txid"] for r in rows}
    assert await gw.balances(USER) == {driver.native: AMOUNT[driver.kind]}


# --- reorgs ------------------------------------------------------------------------------------
async def test_a_reorg_before_credit_orphans_the_deposit(gw: Gateway, driver: ChainDriver) -> None:
    address = await gw.address(USER)
    mark = await driver.mark()
    txid = await driver.pay(address, AMOUNT[driver.kind])
    await settle(gw)
    assert (await by_txid(gw, USER))[txid]["status"] == "confirming"

    await driver.reorg(mark, remine=False)  # the payment is gone for good
    await driver.mine(CONFIRMATIONS)
    await settle(gw)
    deposit = (await by_txid(gw, USER))[txid]
    assert (deposit["status"], deposit["reason"]) == ("orphaned", "reorg")
    assert await gw.credits(USER) == []
    assert await gw.balances(USER) == {}
    assert await gw.alerts() == []


@pytest.mark.parametrize("remine", [False, True], ids=["gone", "mined-again"])
async def test_a_reorg_after_credit_reverses_alerts_and_credits_once_when_mined_again(
    gw: Gateway, driver: ChainDriver, remine: bool
) -> None:
    address = await gw.address(USER)
    amount = AMOUNT[driver.kind]
    mark = await driver.mark()
    txid = await driver.pay(address, amount)
    await driver.mine(CONFIRMATIONS)
    await settle(gw)
    assert await gw.balances(USER) == {driver.native: amount}

    # The payment's block leaves the chain; "mined-again": the same transaction is in the new
    # branch, at another height.
    await driver.reorg(mark, remine=remine)
    await driver.mine(CONFIRMATIONS)
    await settle(gw)
    [alert] = await gw.alerts()
    assert (alert["kind"], alert["severity"]) == ("reorg_reversal", "critical")
    assert (alert["txid"], int(alert["amount"]), alert["user_id"]) == (txid, amount, USER)
    deposit = (await by_txid(gw, USER))[txid]
    credits = await gw.credits(USER)
    if remine:  # reversed, then credited anew under a new key: once in the balance
        assert deposit["status"] == "credited"
        assert sorted(c["reversed"] for c in credits) == [False, True]
        assert len({c["credit_key"] for c in credits}) == 2
        assert await gw.balances(USER) == {driver.native: amount}
    else:
        assert (deposit["status"], deposit["reason"]) == ("reversed", "reorg")
        assert [c["reversed"] for c in credits] == [True]
        assert await gw.balances(USER) == {driver.native: 0}


# --- restarts ----------------------------------------------------------------------------------
ROUNDS = 4
# Wider than harness.CUT_AFTER: an EVM step (blocks, logs, receipts, traces) can outlast 50 ms
# on a busy machine, and the cuts must also land in its later stages (store, credit).
CUTS = (0, 0.002, 0.01, 0.03, 0.08, 0.2, 0.4)


async def test_restart_at_any_point_repeats_nothing(
    network: Network, db: asyncpg.Pool, ledger_url: str, driver: ChainDriver
) -> None:
    users = [f"user{i}" for i in range(2)]
    expected: dict[str, int] = {}
    async with gateway(network, db, ledger_url) as gw:
        addresses = {user: await gw.address(user) for user in users}
    finished = 0
    for round_no in range(ROUNDS):
        # Payments keep arriving while the gateway is killed again and again at every stage of
        # a step (reading the head, scanning, storing, crediting) and of a delivery.
        user = users[round_no % len(users)]
        amount = AMOUNT[driver.kind] + round_no
        await driver.pay(addresses[user], amount)
        expected[user] = expected.get(user, 0) + amount
        for delay in CUTS:
            async with gateway(network, db, ledger_url) as gw:  # a new process: a new Watcher
                finished += await interrupted_step(gw, delay)
    assert 0 < finished < ROUNDS * len(CUTS)  # some steps were cut short, some got through

    await driver.mine(CONFIRMATIONS)
    # A killed dispatcher's claimed rows come back when its lease (30 s) runs out; skip the wait.
    await db.execute("UPDATE ledger_outbox SET next_attempt_at = now() WHERE delivered_at IS NULL")
    async with gateway(network, db, ledger_url) as gw:
        await settle(gw)
        for user in users:
            credits = await gw.credits(user)
            assert len(credits) == ROUNDS // len(users) and not any(c["reversed"] for c in credits)
            assert await gw.balances(user) == {driver.native: expected[user]}
            assert {d["status"] for d in await gw.deposits(user)} == {"credited"}
        undelivered = "SELECT count(*) FROM ledger_outbox WHERE delivered_at IS NULL"
        assert await db.fetchval(undelivered) == 0
        assert await gw.alerts() == []
