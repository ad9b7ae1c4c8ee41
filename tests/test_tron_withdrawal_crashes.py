"""`kill -9` of the signer and the broadcaster at every step of the TRON path sends nothing twice.

The matrix of chaingate/crashpoints.py on the TRON devnet, through real processes
(tests/withdrawal_stack.py): the signer or the broadcaster SIGKILLs itself at one named step
(CHAINGATE_TEST_CRASH_AT) while a TRX withdrawal (to an account that does not exist yet) and a
USDT one go through, and is started again without the variable. Then, on the chain: each
recipient's balance grew by exactly its amount and the hot address signed exactly one
transaction per withdrawal, the one the store recorded; in the store one transaction row per
withdrawal; and the ledger heard each status once, settling the holds.

One core process, database and ledger serve the whole matrix (a module-scoped stack), with a
solidified head 2 blocks behind (not 19) so that settling takes a second; a case replaces only
the process it crashes and leaves the other one (and the restarted one) running for the next."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from chaingate import crashpoints
from chaingate.devnet.manager import DevnetState
from harness import until
from tron_support import TronKey, TronNode
from withdrawal_stack import TRON_HOT, TRON_USDT, TRX, Stack, tron_stack

USER = "tron-crash"
CRASHES = crashpoints.MATRIX
EVENTS = ["requested", "batched", "approved", "signing", "signed", "broadcast", "confirmed"]


@pytest.fixture(scope="module")
async def stack(
    devnet: DevnetState, pg_admin_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Stack, TronNode]]:
    assert devnet.tron_url is not None
    folder = tmp_path_factory.mktemp("tron-crashes")
    async with tron_stack(devnet.tron_url, pg_admin_dsn, folder, USER, mine_every=0.2) as s:
        await s[1].control("solidify-lag", blocks=2)
        try:
            yield s
        finally:
            await s[1].control("solidify-lag", blocks=19)


async def _start(s: Stack, role: str, **extra: str) -> None:
    await (
        s.start_signer(role, **extra) if role == "signer" else s.start_broadcaster(role, **extra)
    )


@pytest.mark.parametrize(("role", "point"), CRASHES, ids=[p for _, p in CRASHES])
async def test_kill_9_at_each_tron_step_sends_nothing_twice(
    stack: tuple[Stack, TronNode], role: str, point: str
) -> None:
    s, node = stack
    first_block = await node.mine(1)
    other = "broadcaster" if role == "signer" else "signer"
    if not s.running(other):
        await _start(s, other)
    await s.kill(role)  # the previous case's restarted one
    await _start(s, role, CHAINGATE_TEST_CRASH_AT=point)
    trx_to, usdt_to = TronKey.fresh(f"trx {point}"), TronKey.fresh(f"usdt {point}")
    ids = [await s.withdraw(USER, "TRX", trx_to.address, 2 * TRX)]
    await s.approved_batch("TRX")
    ids.append(await s.withdraw(USER, "USDT", usdt_to.address, 3 * TRX))
    await s.approved_batch("USDT")
    await s.wait_crashed(role, point)
    await _start(s, role)  # the same process again, without the crash point
    views = await s.final(ids, 90)
    assert {v["status"] for v in views.values()} == {"confirmed"}, views
    assert await node.balance(trx_to.address) == 2 * TRX  # a new account: paid exactly once
    assert await node.token_balance(TRON_USDT, usdt_to) == 3 * TRX
    conn = await asyncpg.connect(s.database_url)
    try:
        rows = await conn.fetch(
            "SELECT withdrawal_id, txid, status FROM withdrawal_txs"
            " WHERE withdrawal_id = ANY($1::bigint[]) ORDER BY withdrawal_id",
            ids,
        )
    finally:
        await conn.close()
    assert [(r["withdrawal_id"], r["status"]) for r in rows] == [(i, "confirmed") for i in ids]
    assert [v["txid"] for v in views.values()] == [r["txid"] for r in rows]
    # What the hot address signed that reached the chain: exactly these, once each (the other
    # cases of the matrix run before or after, never meanwhile).
    assert sorted(await node.sent_by(TRON_HOT.address, first_block)) == sorted(
        r["txid"] for r in rows
    )
    await until(lambda: s.ledger_settled(ids), 30)
    assert await s.ledger_events(ids) == {i: EVENTS for i in ids}
