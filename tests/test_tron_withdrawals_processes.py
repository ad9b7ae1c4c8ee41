"""TRON withdrawals through real processes (tests/withdrawal_stack.py) on the TRON devnet:
`chaingate run --roles api,watchers,dispatcher`, `chaingate signer` and `chaingate run --roles
broadcaster`, two of each of the last two killed with SIGKILL and restarted at random moments
while a TRX batch (to accounts that did not exist) and a USDT batch go through: every recipient
gets its amount exactly once, and nothing is sent twice."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator

import pytest

from chaingate.devnet.manager import DevnetState
from tron_support import TronKey, TronNode
from withdrawal_stack import TRON_USDT, TRX, Stack, tron_stack

USER = "tron-e2e"


@pytest.fixture
async def stack(
    devnet: DevnetState, pg_admin_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Stack, TronNode]]:
    assert devnet.tron_url is not None
    folder = tmp_path_factory.mktemp("tron-withdrawals")
    async with tron_stack(devnet.tron_url, pg_admin_dsn, folder, USER) as s:
        yield s


async def test_kill_9_of_tron_signers_and_broadcasters_sends_nothing_twice(
    stack: tuple[Stack, TronNode],
) -> None:
    s, node = stack
    names = ["signer-a", "signer-b", "broadcaster-a", "broadcaster-b"]
    for name in names:
        await (s.start_signer(name) if name.startswith("signer") else s.start_broadcaster(name))
    trx = {TronKey.fresh(f"trx {i}"): (i + 1) * TRX for i in range(3)}
    usdt = {TronKey.fresh(f"usdt {i}"): (i + 2) * TRX for i in range(3)}
    ids = [await s.withdraw(USER, "TRX", k.address, a) for k, a in trx.items()]
    await s.approved_batch("TRX")
    ids += [await s.withdraw(USER, "USDT", k.address, a) for k, a in usdt.items()]
    await s.approved_batch("USDT")
    rng = random.Random(12)

    async def chaos() -> None:
        while True:
            await asyncio.sleep(rng.uniform(4.0, 8.0))  # a start takes seconds on a busy machine
            name = rng.choice(names)
            await s.kill(name)
            await (s.start_signer(name) if name.startswith("signer") else s.start_broadcaster(name))

    task = asyncio.create_task(chaos())
    try:
        views = await s.final(ids, 240, logs=("signer-a", "broadcaster-a"))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert {v["status"] for v in views.values()} == {"confirmed"}
    for key, amount in trx.items():
        assert await node.balance(key.address) == amount  # new accounts: exactly once
    for key, amount in usdt.items():
        assert await node.token_balance(TRON_USDT, key) == amount
    for name in names:
        await s.kill(name)
