"""TRON withdrawals through real processes (tests/withdrawal_stack.py) on the TRON devnet:
`chaingate run --roles api,watchers,dispatcher`, `chaingate signer` and `chaingate run --roles
broadcaster`, two of each of the last two killed with SIGKILL and restarted at random moments
while a TRX batch (to accounts that did not exist) and a USDT batch go through: every recipient
gets its amount exactly once, and nothing is sent twice."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator

import pytest

from chaingate.devnet import postgres
from chaingate.devnet.chains import write_chains
from chaingate.devnet.manager import DevnetState
from chaingate.devnet.tron_node import GENESIS_KEYS
from chaingate.ledger.client import LedgerClient
from chaingate.ledger.reference.app import serve_reference_ledger
from harness import until
from tron_support import TronKey, TronNode, transfer_data
from withdrawal_stack import LEDGER_SECRET, Stack, free_port

TRX = 1_000_000
USER = "tron-e2e"
NET = "tron-devnet"
HOT = TronKey.genesis(0)  # holds the registry's USDT and a million TRX


@pytest.fixture
async def stack(
    devnet: DevnetState, pg_admin_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Stack, TronNode]]:
    assert devnet.tron_url is not None
    node = TronNode(devnet.tron_url)
    folder = tmp_path_factory.mktemp("tron-withdrawals")
    head = await node.mine(1)
    chains = write_chains(
        folder / "chains", [NET], start_heights={NET: head}, hot_addresses={NET: HOT.address}
    )
    limits = folder / "signer-limits.toml"
    limits.write_text(
        "".join(
            f'[tron-devnet.{a}]\nper_transaction = "{10**6 * TRX}"\nper_day = "{10**8 * TRX}"\n'
            for a in ("TRX", "USDT")
        )
    )
    server = postgres.server_of(pg_admin_dsn)
    async with (
        postgres.scratch_database(server, "cg_tw", migrate=True) as dsn,
        postgres.scratch_database(server, "cg_tw_ledger") as ledger_dsn,
        serve_reference_ledger("127.0.0.1", 0, ledger_dsn, LEDGER_SECRET.encode()) as ledger_url,
    ):
        async with LedgerClient(ledger_url, LEDGER_SECRET.encode()) as ledger:
            for asset in ("TRX", "USDT"):
                await ledger.post(
                    "/credits",
                    {
                        "idempotency_key": f"credit:tron-e2e:{asset}:{uuid.uuid4().hex}",
                        "user_id": USER,
                        "network": NET,
                        "asset": asset,
                        "amount": str(10_000 * TRX),
                        "decimals": 6,
                        "txid": uuid.uuid4().hex * 2,
                        "position": "native",
                        "block_number": 1,
                    },
                )
        s = Stack(
            folder=folder,
            database_url=dsn,
            eth_url="",
            ledger_url=ledger_url,
            chains=chains,
            api_port=free_port(),
            ledger_dsn=ledger_dsn,
            network=NET,
            network_env={
                "CHAINGATE_NETWORKS": NET,
                "CHAINGATE_TRON_DEVNET_URL": devnet.tron_url,
            },
            signer_env={
                "CHAINGATE_SIGNER_DEVNET_KEYS": GENESIS_KEYS[0],
                "CHAINGATE_SIGNER_LIMITS": str(limits),
            },
        )

        async def keep_mining() -> None:
            while True:
                await asyncio.sleep(0.3)
                await node.mine(1)

        miner = asyncio.create_task(keep_mining())
        try:
            await s.start_core()
            await s.wait_api()
            yield s, node
        finally:
            miner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await miner
            await s.stop_all()


async def usdt_balance(node: TronNode, contract: str, holder: TronKey) -> int:
    answer = await node.post(
        "wallet/triggerconstantcontract",
        owner_address=holder.address,
        contract_address=contract,
        function_selector="balanceOf(address)",
        parameter=transfer_data(holder.raw, 1)[8:72],
        visible=True,
    )
    return int(answer["constant_result"][0], 16)


async def test_kill_9_of_tron_signers_and_broadcasters_sends_nothing_twice(
    stack: tuple[Stack, TronNode],
) -> None:
    s, node = stack
    contract = "TAeZ9H8GSk8HggrZ1yGPM3sgLLteD3JDWd"  # the registry's devnet USDT
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

    views: dict[int, dict[str, object]] = {}

    async def all_final() -> bool:
        for wid in ids:
            views[wid] = await s.withdrawal(wid)
        return all(v["status"] in ("confirmed", "failed") for v in views.values())

    task = asyncio.create_task(chaos())
    try:
        await until(all_final, 240)
    except AssertionError:
        raise AssertionError(
            f"not final: {[(w, v['status']) for w, v in views.items()]}\n"
            + "\n".join(s.logs(n, 15) for n in ("signer-a", "broadcaster-a", "core"))
        ) from None
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert {v["status"] for v in views.values()} == {"confirmed"}
    for key, amount in trx.items():
        assert await node.balance(key.address) == amount  # new accounts: exactly once
    for key, amount in usdt.items():
        assert await usdt_balance(node, contract, key) == amount
    for name in names:
        await s.kill(name)
