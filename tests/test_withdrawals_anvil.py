"""Withdrawals end to end on anvil, through the API and real processes (tests/withdrawal_stack.py):
the maker makes a batch, two approvers approve it, `chaingate signer` signs it in its own
process, `chaingate run --roles broadcaster` sends and tracks it, and the chain is read directly
to check what really happened: each recipient got exactly its amount, once."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from eth_account import Account
from eth_utils import keccak

from chaingate import crashpoints
from chaingate.devnet import evm_contracts as dev
from chaingate.devnet import postgres
from chaingate.devnet.manager import DevnetState
from chaingate.devnet.withdrawal_flow import FlowTokens, run_withdrawal_batch
from chaingate.ledger.client import LedgerClient
from chaingate.ledger.reference.app import serve_reference_ledger
from chaingate.store import connect_pool
from harness import until
from signer_support import HOT_ADDRESS
from withdrawal_stack import (
    LEDGER_SECRET,
    TOKENS,
    Stack,
    chains_dir,
    eth_balance,
    free_port,
    hot_nonce,
    hot_transactions,
    rpc,
)

ETH = 10**18
USER = "user-e2e"


@pytest.fixture(scope="module")
async def stack(
    devnet: DevnetState, pg_admin_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    assert devnet.eth_url and devnet.eth_token
    folder = tmp_path_factory.mktemp("withdrawals")
    # The hot wallet (anvil account 9) holds ETH from genesis; it gets NEXO from the deployer.
    await dev.token_transfer(
        devnet.eth_url, devnet.eth_token, dev.DEFAULT_SENDER, HOT_ADDRESS, 10_000_000 * ETH
    )
    head = int(await rpc(devnet.eth_url, "eth_blockNumber"), 16)
    server = postgres.server_of(pg_admin_dsn)
    async with (
        postgres.scratch_database(server, "cg_wd", migrate=True) as dsn,
        postgres.scratch_database(server, "cg_wd_ledger") as ledger_dsn,
        serve_reference_ledger("127.0.0.1", 0, ledger_dsn, LEDGER_SECRET.encode()) as ledger_url,
    ):
        await _fund_user(ledger_url, devnet.eth_token)
        s = Stack(
            folder=folder,
            database_url=dsn,
            eth_url=devnet.eth_url,
            ledger_url=ledger_url,
            chains=chains_dir(folder, devnet.eth_token.lower(), head),
            api_port=free_port(),
            ledger_dsn=ledger_dsn,
        )
        miner = asyncio.create_task(_keep_mining(devnet.eth_url))
        try:
            await s.start_core()
            await s.wait_api()
            yield s
        finally:
            miner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await miner
            await s.stop_all()


async def _fund_user(ledger_url: str, token: str) -> None:
    """The ledger holds a withdrawal's funds from the user's balance: give the user some."""
    async with LedgerClient(ledger_url, LEDGER_SECRET.encode()) as ledger:
        for asset in ("ETH", "NEXO"):
            key = f"credit:e2e:{asset}:{uuid.uuid4().hex}"
            await ledger.post(
                "/credits",
                {
                    "idempotency_key": key,
                    "user_id": USER,
                    "network": "ethereum-devnet",
                    "asset": asset,
                    "amount": str(100_000 * ETH),
                    "decimals": 18,
                    "txid": "0x" + uuid.uuid4().hex * 2,
                    "position": "log:0",
                    "block_number": 1,
                },
            )


MINING = asyncio.Event()  # cleared by a test that wants transactions to sit unmined


async def _keep_mining(url: str) -> None:
    """anvil mines a block per transaction; confirmations need blocks after it."""
    MINING.set()
    while True:
        await asyncio.sleep(0.4)
        await MINING.wait()
        with contextlib.suppress(Exception):
            await dev.mine(url, 1)


async def _wait_planned(stack: Stack, batch_id: int) -> None:
    """Until the planner (broadcaster role) gave the batch's signer job its plan."""
    pool = await connect_pool(stack.database_url, max_size=1)
    try:

        async def planned() -> bool:
            return bool(
                await pool.fetchval(
                    "SELECT plan IS NOT NULL FROM signer_jobs WHERE batch_id = $1", batch_id
                )
            )

        await until(planned, 60)
    finally:
        await pool.close()


async def _up(stack: Stack, name: str, starts: int) -> bool:
    return stack.starts(name) > starts


async def _batch_alerted(stack: Stack, kind: str, batch_id: int) -> bool:
    status, alerts = await stack.api("alice", "GET", "/v1/alerts")
    return status == 200 and any(
        a["kind"] == kind and a["details"].get("batch_id") == batch_id for a in alerts["alerts"]
    )


def _fresh_address() -> str:
    return str(Account.create().address)


async def _token_balance(stack: Stack, token: str, address: str) -> int:
    return await dev.token_balance(stack.eth_url, token, address)


async def test_batches_of_eth_and_nexo_are_signed_sent_and_confirmed_once(
    stack: Stack, devnet: DevnetState
) -> None:
    assert devnet.eth_token
    first_block = int(await rpc(stack.eth_url, "eth_blockNumber"), 16)
    await stack.start_signer()
    await stack.start_broadcaster()
    eth_out = {_fresh_address(): amount for amount in (1 * ETH, 2 * ETH + 1)}
    nexo_out = {_fresh_address(): amount for amount in (5 * ETH, 7 * ETH)}
    ids = [await stack.withdraw(USER, "NEXO", to, a) for to, a in nexo_out.items()]
    await stack.approved_batch("NEXO")
    # The ETH batch through the devnet helper the demo uses (the API only, one token per role).
    tokens = FlowTokens(
        service=TOKENS["svc"][0], maker=TOKENS["maker"][0],
        approvers=(TOKENS["alice"][0], TOKENS["bob"][0]),
    )  # fmt: skip
    api_url = f"http://127.0.0.1:{stack.api_port}"
    eth_views = await run_withdrawal_batch(
        api_url, tokens, "ethereum-devnet", "ETH", list(eth_out.items()), user_id=USER
    )
    ids = [v["id"] for v in eth_views] + ids
    views = await stack.final(ids)
    assert {v["status"] for v in views.values()} == {"confirmed"}, views
    for to, amount in eth_out.items():
        assert await eth_balance(stack.eth_url, to) == amount
    for to, amount in nexo_out.items():
        assert await _token_balance(stack, devnet.eth_token, to) == amount
    for view in views.values():
        assert view["txid"] and int(view["fee"]) > 0 and view["confirmations"] >= 2
        steps = [h["status"] for h in view["history"]]
        assert steps == [
            "requested", "batched", "approved", "signing", "signed", "broadcast", "confirmed"
        ]  # fmt: skip
    sent = await hot_transactions(stack.eth_url, first_block)
    assert len(sent) == 4 and len({int(t["nonce"], 16) for t in sent}) == 4
    # The ledger was told every step and settled the holds.
    await until(lambda: stack.ledger_settled(ids), 30)
    await stack.kill("signer")
    await stack.kill("broadcaster")


async def test_amount_over_the_signers_own_limit_is_refused_with_nothing_sent(
    stack: Stack,
) -> None:
    first_block = int(await rpc(stack.eth_url, "eth_blockNumber"), 16)
    await stack.start_signer(per_transaction_eth=2)  # the API allows up to 100 ETH
    await stack.start_broadcaster()
    to = _fresh_address()
    wid = await stack.withdraw(USER, "ETH", to, 3 * ETH)
    batch = await stack.approved_batch("ETH")

    await until(lambda: _batch_alerted(stack, "signer_refused", batch["id"]), 60)
    assert (await stack.withdrawal(wid))["status"] == "approved"
    assert await eth_balance(stack.eth_url, to) == 0
    assert await hot_transactions(stack.eth_url, first_block) == []
    # Ops sees the refused job and fails the batch from the CLI: the funds go back.
    status, body = await stack.api("alice", "GET", "/v1/signer/refused")
    [job] = [j for j in body["jobs"] if j["batch_id"] == batch["id"]]
    assert status == 200 and job["rejectable"] and "limit_per_transaction" in job["reason"]
    listed = await stack.ops("alice", "signer", "refused")
    assert f"#{batch['id']}" in listed and "limit_per_transaction" in listed, listed
    await stack.ops("alice", "batches", "reject", str(batch["id"]), "--reason", "over the limit",
                    "--fail")  # fmt: skip
    view = await stack.withdrawal(wid)
    assert view["status"] == "failed" and "over the limit" in view["failure_reason"]
    _, body = await stack.api("alice", "GET", "/v1/signer/refused")
    assert all(j["batch_id"] != batch["id"] for j in body["jobs"])

    async def released() -> bool:
        conn = await asyncpg.connect(stack.ledger_dsn)
        try:
            return (
                await conn.fetchval(
                    "SELECT status FROM refledger.holds WHERE withdrawal_id = $1", str(wid)
                )
                == "released"
            )
        finally:
            await conn.close()

    await until(released, 30)
    await stack.kill("signer")
    await stack.kill("broadcaster")


async def test_kill_9_of_signers_and_broadcasters_never_sends_twice_or_skips(
    stack: Stack,
) -> None:
    """Two signers and two broadcasters at once, each killed with SIGKILL and restarted at
    random moments while a batch goes through: every recipient gets its amount exactly once,
    and no nonce of the hot address carries two transactions."""
    first_block = int(await rpc(stack.eth_url, "eth_blockNumber"), 16)
    names = ["signer-a", "signer-b", "broadcaster-a", "broadcaster-b"]
    for name in names:
        await (
            stack.start_signer(name) if name.startswith("signer") else stack.start_broadcaster(name)
        )
    outputs = {_fresh_address(): (i + 1) * ETH // 10 for i in range(6)}
    ids = [await stack.withdraw(USER, "ETH", to, a) for to, a in outputs.items()]
    await stack.approved_batch("ETH")
    rng = random.Random(7)

    async def chaos() -> None:
        while True:
            await asyncio.sleep(rng.uniform(1.0, 3.0))
            name = rng.choice(names)
            await stack.kill(name)
            starts = stack.starts(name)
            await (
                stack.start_signer(name)
                if name.startswith("signer")
                else stack.start_broadcaster(name)
            )
            # A start takes seconds on a busy machine: a process killed before it ever worked
            # proves nothing, so the next kill waits until this one is up.
            await until(functools.partial(_up, stack, name, starts), 60)

    task = asyncio.create_task(chaos())
    try:
        views = await stack.final(ids, seconds=120)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert {v["status"] for v in views.values()} == {"confirmed"}
    for to, amount in outputs.items():
        assert await eth_balance(stack.eth_url, to) == amount
    sent = await hot_transactions(stack.eth_url, first_block)
    nonces = [int(t["nonce"], 16) for t in sent]
    assert len(sent) == len(outputs) and len(set(nonces)) == len(nonces)
    assert sorted(nonces) == list(range(min(nonces), min(nonces) + len(nonces)))  # no gap
    for name in names:
        await stack.kill(name)


@pytest.mark.parametrize(
    ("fail_mode", "reason"),
    [(2, "reverted"), (1, "no Transfer")],  # 2: transfer() reverts; 1: it returns false
)
async def test_token_transfer_that_moves_nothing_fails_the_withdrawal_and_returns_the_funds(
    stack: Stack, devnet: DevnetState, fail_mode: int, reason: str
) -> None:
    """A token that reverts is a failed withdrawal; so is one that "succeeds" (receipt status 1)
    by returning false without a Transfer event: nothing reached the recipient either way."""
    assert devnet.eth_token
    await stack.start_broadcaster()  # plans the job; nothing to sign yet without a signer
    to = _fresh_address()
    wid = await stack.withdraw(USER, "NEXO", to, 3 * ETH)
    batch = await stack.approved_batch("NEXO")
    await _wait_planned(stack, batch["id"])
    await dev.set_fail_mode(stack.eth_url, devnet.eth_token, fail_mode)
    try:
        await stack.start_signer()
        [view] = (await stack.final([wid])).values()
    finally:
        await dev.set_fail_mode(stack.eth_url, devnet.eth_token, 0)
    assert view["status"] == "failed" and reason in view["failure_reason"]
    assert await _token_balance(stack, devnet.eth_token, to) == 0
    history = [h["status"] for h in view["history"]]
    assert history[-2:] == ["broadcast", "failed"]
    await stack.kill("signer")
    await stack.kill("broadcaster")


async def test_stuck_transaction_is_replaced_at_the_same_nonce_and_confirmed_once(
    stack: Stack,
) -> None:
    first_block = int(await rpc(stack.eth_url, "eth_blockNumber"), 16)
    MINING.clear()
    await rpc(stack.eth_url, "evm_setAutomine", False)  # what was sent sits in the mempool
    try:
        await stack.start_signer()
        await stack.start_broadcaster()
        to = _fresh_address()
        wid = await stack.withdraw(USER, "ETH", to, 1 * ETH)
        await stack.approved_batch("ETH")
        pool = await connect_pool(stack.database_url, max_size=1)
        try:

            async def replacement_sent() -> bool:
                rows = await pool.fetch(
                    "SELECT status FROM withdrawal_txs WHERE withdrawal_id = $1 ORDER BY id", wid
                )
                return [r["status"] for r in rows] == ["replaced", "broadcast"]

            await until(replacement_sent, 60)
            old, new = await pool.fetch(
                "SELECT * FROM withdrawal_txs WHERE withdrawal_id = $1 ORDER BY id", wid
            )
        finally:
            await pool.close()
        assert old["nonce"] == new["nonce"] and old["replaced_by"] == new["id"]
        assert int(new["max_fee_per_gas"]) >= int(old["max_fee_per_gas"]) * 110 // 100
        assert int(new["max_fee_per_gas"]) * new["gas_limit"] <= int(new["fee_cap"])
    finally:
        await rpc(stack.eth_url, "evm_setAutomine", True)
        MINING.set()
    [view] = (await stack.final([wid])).values()
    assert view["status"] == "confirmed" and view["txid"] == new["txid"]
    assert await eth_balance(stack.eth_url, to) == 1 * ETH
    sent = await hot_transactions(stack.eth_url, first_block)
    assert [t["hash"] for t in sent] == [new["txid"]]  # one transaction at that nonce, mined once
    await stack.kill("signer")
    await stack.kill("broadcaster")


async def test_reorg_dropping_a_mined_withdrawal_rebroadcasts_the_same_bytes(
    stack: Stack,
) -> None:
    """Mined, then a reorg drops its block before it is confirmed: the tracker sends the very
    same signed bytes again, and the withdrawal ends confirmed once, with the same txid."""
    MINING.clear()  # one block per transaction only: it stays below its confirmations
    snapshot = await rpc(stack.eth_url, "evm_snapshot")
    first_block = int(await rpc(stack.eth_url, "eth_blockNumber"), 16) + 1
    try:
        await stack.start_signer()
        await stack.start_broadcaster()
        to = _fresh_address()
        wid = await stack.withdraw(USER, "ETH", to, 1 * ETH)
        await stack.approved_batch("ETH")
        pool = await connect_pool(stack.database_url, max_size=1)
        try:

            async def mined() -> bool:
                return bool(
                    await pool.fetchval(
                        "SELECT block_number IS NOT NULL FROM withdrawal_txs"
                        " WHERE withdrawal_id = $1",
                        wid,
                    )
                )

            await until(mined, 60)
            txid = await pool.fetchval(
                "SELECT txid FROM withdrawal_txs WHERE withdrawal_id = $1", wid
            )
        finally:
            await pool.close()
        assert (await stack.withdrawal(wid))["status"] == "broadcast"
        assert await rpc(stack.eth_url, "evm_revert", snapshot)
        await dev.mine(stack.eth_url, 2)  # the other branch, longer than the dropped one
        assert await rpc(stack.eth_url, "eth_getTransactionReceipt", txid) is None
    finally:
        MINING.set()
    [view] = (await stack.final([wid])).values()
    assert view["status"] == "confirmed" and view["txid"] == txid
    assert await eth_balance(stack.eth_url, to) == 1 * ETH
    sent = await hot_transactions(stack.eth_url, first_block)
    assert [t["hash"] for t in sent] == [txid]
    await stack.kill("signer")
    await stack.kill("broadcaster")


async def test_broadcaster_killed_after_sending_before_bookkeeping_sends_nothing_twice(
    stack: Stack,
) -> None:
    """The signed bytes reached the chain and were mined, but the broadcaster died before it
    recorded that: the next broadcaster sends the same bytes again ("nonce too low" or "already
    known" from the node), counts that as sent, and the withdrawal is confirmed once."""
    first_block = int(await rpc(stack.eth_url, "eth_blockNumber"), 16) + 1
    await stack.start_broadcaster("planner-only")  # plans the job, then dies before sending
    to = _fresh_address()
    wid = await stack.withdraw(USER, "ETH", to, 1 * ETH)
    batch = await stack.approved_batch("ETH")
    await _wait_planned(stack, batch["id"])
    await stack.kill("planner-only")
    pool = await connect_pool(stack.database_url, max_size=1)
    try:
        await stack.start_signer()

        async def signed() -> bool:
            return bool(
                await pool.fetchval(
                    "SELECT count(*) FROM withdrawal_txs WHERE withdrawal_id = $1", wid
                )
            )

        await until(signed, 60)
        raw, txid = await pool.fetchrow(
            "SELECT raw_tx, txid FROM withdrawal_txs WHERE withdrawal_id = $1", wid
        )
    finally:
        await pool.close()
    # What the killed broadcaster had done: the bytes are on chain, nothing recorded.
    assert await rpc(stack.eth_url, "eth_sendRawTransaction", "0x" + raw) == txid
    await dev.mine(stack.eth_url, 3)
    assert (await stack.withdrawal(wid))["status"] == "approved"
    await stack.start_broadcaster()
    [view] = (await stack.final([wid])).values()
    assert view["status"] == "confirmed" and view["txid"] == txid
    assert await eth_balance(stack.eth_url, to) == 1 * ETH
    assert [t["hash"] for t in await hot_transactions(stack.eth_url, first_block)] == [txid]
    await stack.kill("signer")
    await stack.kill("broadcaster")


# --- kill -9 at every step: a deterministic matrix (chaingate/crashpoints.py) -----------------

CRASHES = crashpoints.MATRIX


async def _start(stack: Stack, role: str, name: str, **extra: str) -> None:
    if role == "signer":
        await stack.start_signer(name, **extra)
    else:
        await stack.start_broadcaster(name, **extra)


@pytest.mark.parametrize(("role", "point"), CRASHES, ids=[p for _, p in CRASHES])
async def test_kill_9_at_each_step_never_sends_twice_and_never_skips(
    stack: Stack, role: str, point: str
) -> None:
    """The signer or broadcaster SIGKILLs itself at one named step (CHAINGATE_TEST_CRASH_AT)
    and is started again without it: on the chain each recipient is paid exactly once, the hot
    address's nonces are consecutive with none used twice, and the ledger heard each status of
    each withdrawal once, settling the holds."""
    first_block = int(await rpc(stack.eth_url, "eth_blockNumber"), 16) + 1
    nonce_before = await hot_nonce(stack.eth_url)
    other = "broadcaster" if role == "signer" else "signer"
    await _start(stack, other, other)
    await _start(stack, role, role, CHAINGATE_TEST_CRASH_AT=point)
    outputs = {_fresh_address(): ETH // 100 * (i + 1) for i in range(2)}
    ids = [await stack.withdraw(USER, "ETH", to, a) for to, a in outputs.items()]
    await stack.approved_batch("ETH")
    await stack.wait_crashed(role, point)
    await _start(stack, role, role)  # the same process again, without the crash point
    views = await stack.final(ids)
    assert {v["status"] for v in views.values()} == {"confirmed"}, views
    for to, amount in outputs.items():
        assert await eth_balance(stack.eth_url, to) == amount
    sent = await hot_transactions(stack.eth_url, first_block)
    assert sorted(int(t["nonce"], 16) for t in sent) == [nonce_before, nonce_before + 1]
    assert await hot_nonce(stack.eth_url) == nonce_before + 2
    await until(lambda: stack.ledger_settled(ids), 30)
    for events in (await stack.ledger_events(ids)).values():
        assert events == [
            "requested", "batched", "approved", "signing", "signed", "broadcast", "confirmed"
        ]  # fmt: skip
    await stack.kill(role)
    await stack.kill(other)


async def test_reorg_dropping_a_confirmed_withdrawal_ends_with_it_confirmed_again_once(
    stack: Stack,
) -> None:
    """Confirmed (and told to the ledger), then a reorg deeper than the confirmations drops its
    block: a critical alert, the SAME bytes sent again and mined again, the withdrawal stays
    confirmed, the recipient is paid once and the ledger hears `confirmed` once. The row is
    done only once its block is deeper than the reorg window."""
    MINING.clear()
    snapshot = await rpc(stack.eth_url, "evm_snapshot")
    first_block = int(await rpc(stack.eth_url, "eth_blockNumber"), 16) + 1
    pool = await connect_pool(stack.database_url, max_size=1)
    try:
        await stack.start_signer()
        await stack.start_broadcaster()
        to = _fresh_address()
        wid = await stack.withdraw(USER, "ETH", to, ETH // 10)
        await stack.approved_batch("ETH")

        async def sent() -> bool:
            return bool(
                await pool.fetchval(
                    "SELECT count(*) FROM withdrawal_txs WHERE withdrawal_id = $1", wid
                )
            )

        await until(sent, 60)
        txid = await pool.fetchval("SELECT txid FROM withdrawal_txs WHERE withdrawal_id = $1", wid)

        async def mined() -> bool:
            return await rpc(stack.eth_url, "eth_getTransactionReceipt", txid) is not None

        await until(mined, 60)
        # Exactly the confirmations (2: its block and one more), and no further block: the reorg
        # stays within the watcher's window (a deeper one halts the watcher by design).
        await dev.mine(stack.eth_url, 1)

        async def confirmed() -> bool:
            return (await stack.withdrawal(wid))["status"] == "confirmed"

        await until(confirmed, 60)
        assert await rpc(stack.eth_url, "evm_revert", snapshot)
        await dev.mine(stack.eth_url, 6)  # the other branch, longer than the dropped one
        assert await rpc(stack.eth_url, "eth_getTransactionReceipt", txid) is None
        MINING.set()

        async def deep_again() -> bool:
            row = await pool.fetchrow(
                "SELECT status, done_at FROM withdrawal_txs WHERE withdrawal_id = $1", wid
            )
            return row["status"] == "confirmed" and row["done_at"] is not None

        await until(deep_again, 90)
        _, alerts = await stack.api("alice", "GET", "/v1/alerts")
    finally:
        MINING.set()
        await pool.close()
    assert any(
        a["kind"] == "withdrawal_reorged_after_confirmation" and a["txid"] == txid
        for a in alerts["alerts"]
    ), alerts
    view = await stack.withdrawal(wid)
    assert view["status"] == "confirmed" and view["txid"] == txid
    assert await eth_balance(stack.eth_url, to) == ETH // 10
    assert [t["hash"] for t in await hot_transactions(stack.eth_url, first_block)] == [txid]
    assert (await stack.ledger_events([wid]))[wid].count("confirmed") == 1
    assert await stack.ledger_settled([wid])
    await stack.kill("signer")
    await stack.kill("broadcaster")


async def test_a_token_withdrawal_the_hot_wallet_cannot_pay_is_held_with_an_alert(
    stack: Stack, devnet: DevnetState
) -> None:
    """The hot wallet holds no NEXO: the node refuses to estimate the approved transfer. The
    batch is held (nothing signed, nothing sent, the ledger keeps holding the funds) with a
    critical `withdrawal_unplannable` alert; once the hot wallet is refilled it goes out by
    itself and is confirmed once."""
    assert devnet.eth_token
    token = devnet.eth_token
    # DevToken's balanceOf is its storage slot 4: the hot wallet's entry, emptied directly.
    slot = "0x" + keccak(bytes.fromhex(HOT_ADDRESS[2:].rjust(64, "0")) + (4).to_bytes(32)).hex()
    before = await _token_balance(stack, token, HOT_ADDRESS)
    await rpc(stack.eth_url, "anvil_setStorageAt", token, slot, "0x" + "00" * 32)
    assert await _token_balance(stack, token, HOT_ADDRESS) == 0
    try:
        await stack.start_signer()
        await stack.start_broadcaster()
        to = _fresh_address()
        wid = await stack.withdraw(USER, "NEXO", to, 3 * ETH)
        batch = await stack.approved_batch("NEXO")

        await until(lambda: _batch_alerted(stack, "withdrawal_unplannable", batch["id"]), 60)
        assert (await stack.withdrawal(wid))["status"] == "approved"
        pool = await connect_pool(stack.database_url, max_size=1)
        try:
            assert not await pool.fetchval(
                "SELECT count(*) FROM withdrawal_txs WHERE withdrawal_id = $1", wid
            )
        finally:
            await pool.close()
    finally:
        await rpc(stack.eth_url, "anvil_setStorageAt", token, slot, f"0x{before:064x}")
    [view] = (await stack.final([wid])).values()
    assert view["status"] == "confirmed"
    assert await _token_balance(stack, token, to) == 3 * ETH
    await stack.kill("signer")
    await stack.kill("broadcaster")
