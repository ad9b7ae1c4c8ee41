"""A Bitcoin withdrawal batch through the API and real processes on litecoind regtest, with
`kill -9` of signers and broadcasters right after the signed bytes are recorded and right after
they are broadcast: one transaction is mined, each destination gets its amount exactly once,
and no coin is locked or spent twice."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from chaindrivers.bitcoin import ltc_rpc
from chaingate.chains.bitcoin.addresses import BitcoinAddresses
from chaingate.chains.bitcoin.bech32 import encode_segwit
from chaingate.devnet import postgres
from chaingate.devnet.bitcoin import LitecoinRpc
from chaingate.devnet.chains import write_chains
from chaingate.devnet.manager import DevnetState
from chaingate.ledger.reference.app import serve_reference_ledger
from chaingate.withdrawals.coins import wallet_address
from harness import devnet_network
from test_bitcoin_destinations import b58check
from test_bitcoin_hotwallet import DEVNET_HOT_KEY
from withdrawal_stack import LEDGER_SECRET, Stack, free_port, fund_user

BTC = "bitcoin-devnet"
USER = "user-btc-e2e"


class BitcoinStack(Stack):
    ltc_url: str = ""

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(
            CHAINGATE_NETWORKS=BTC, CHAINGATE_BITCOIN_DEVNET_RPC=self.ltc_url, **extra
        )

    async def start_signer(self, name: str = "signer", per_transaction_eth: int = 0) -> None:
        limits = self.folder / "btc-limits.toml"
        limits.write_text(f'[{BTC}.BTC]\nper_transaction = "100000000"\nper_day = "1000000000"\n')
        await self.start(
            name,
            ["signer"],
            CHAINGATE_SIGNER_DEVNET_KEYS=DEVNET_HOT_KEY.hex(),
            CHAINGATE_SIGNER_LIMITS=str(limits),
        )


@pytest.fixture(scope="module")
async def ltc(devnet: DevnetState) -> AsyncIterator[LitecoinRpc]:
    async with ltc_rpc(devnet) as rpc:
        await rpc.mine(1)
        yield rpc


@pytest.fixture(scope="module")
async def stack(
    devnet: DevnetState,
    ltc: LitecoinRpc,
    pg_admin_dsn: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[BitcoinStack]:
    assert devnet.ltc_rpc_url is not None
    folder = tmp_path_factory.mktemp("btc-withdrawals")
    head = int(await ltc.call("getblockcount", wallet=False))
    server = postgres.server_of(pg_admin_dsn)
    async with (
        postgres.scratch_database(server, "cg_btcwd", migrate=True) as dsn,
        postgres.scratch_database(server, "cg_btcwd_ledger") as ledger_dsn,
        serve_reference_ledger("127.0.0.1", 0, ledger_dsn, LEDGER_SECRET.encode()) as ledger_url,
    ):
        await fund_user(ledger_url, USER, BTC, "BTC", 10 * 10**8, 8, "vout:0")
        s = BitcoinStack(
            folder=folder,
            database_url=dsn,
            eth_url="http://127.0.0.1:1",
            ledger_url=ledger_url,
            chains=write_chains(folder / "chains", [BTC], start_heights={BTC: head + 1}),
            api_port=free_port(),
            ledger_dsn=ledger_dsn,
        )
        s.ltc_url = devnet.ltc_rpc_url
        miner = asyncio.create_task(_keep_mining(ltc))
        try:
            await s.start_core()
            await s.wait_api()
            yield s
        finally:
            miner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await miner
            await s.stop_all()


async def _keep_mining(ltc: LitecoinRpc) -> None:
    while True:
        await asyncio.sleep(1.0)
        with contextlib.suppress(Exception):
            await ltc.mine(1)


async def test_kill_9_of_signers_and_broadcasters_sends_one_batch_transaction(
    stack: BitcoinStack, ltc: LitecoinRpc
) -> None:
    network = devnet_network(BTC, stack.ltc_url)
    assert network.hot_xpub
    for index in range(3):
        script = bytes.fromhex(wallet_address(network.hot_xpub, 0, index).script)
        await ltc.send_to_script(script, 400_000)
    body20, body32 = bytes(range(140, 160)), bytes(range(160, 192))
    outputs = {
        encode_segwit("bcrt", 0, body20): 51_001,  # P2WPKH
        encode_segwit("bcrt", 1, body32): 52_002,  # P2TR
        b58check(0x3A, body20): 53_003,  # P2SH (litecoind's version byte)
        b58check(0x6F, body20): 54_004,  # P2PKH
        encode_segwit("bcrt", 0, body32): 55_005,  # P2WSH
    }
    ids = []
    for to, amount in outputs.items():
        status, body = await stack.api(
            "svc",
            "POST",
            "/v1/withdrawals",
            {
                "request_id": uuid.uuid4().hex,
                "user_id": USER,
                "network": BTC,
                "asset": "BTC",
                "to_address": to,
                "amount": str(amount),
            },
        )
        assert status == 201, body
        ids.append(body["id"])
    status, batch = await stack.api(
        "maker", "POST", "/v1/batches", {"network": BTC, "asset": "BTC"}
    )
    assert status == 201, batch
    for approver in ("alice", "bob"):
        status, body = await stack.api(
            approver,
            "POST",
            f"/v1/batches/{batch['id']}/approvals",
            {"content_hash": batch["content_hash"]},
        )
        assert status in (200, 201), body
    db = await asyncpg.connect(stack.database_url)
    loop = asyncio.get_running_loop()

    async def wait_for(query: str, seconds: float = 90) -> None:
        deadline = loop.time() + seconds
        while not await db.fetchval(query):
            assert loop.time() < deadline, stack.logs("signer-a") + stack.logs("broadcaster-a")
            await asyncio.sleep(0.2)

    try:
        # Two signers race for the job; kill -9 right after the signed bytes are recorded
        # (before or while they are broadcast), then again right after the broadcast.
        await stack.start_signer("signer-a")
        await stack.start_signer("signer-b")
        await stack.start_broadcaster("broadcaster-a")
        await wait_for("SELECT count(*) FROM withdrawal_txs")
        for name in ("signer-a", "signer-b", "broadcaster-a"):
            await stack.kill(name)
        await stack.start_signer("signer-a")
        await stack.start_broadcaster("broadcaster-b")
        await wait_for("SELECT count(*) FROM withdrawal_txs WHERE status <> 'signed'")
        await stack.kill("broadcaster-b")
        await stack.start_broadcaster("broadcaster-a")
        await wait_for(
            "SELECT count(*) = 5 FROM withdrawals WHERE status IN ('confirmed', 'failed')", 120
        )
        views = [await stack.withdrawal(i) for i in ids]
    finally:
        for name in ("signer-a", "signer-b", "broadcaster-a", "broadcaster-b"):
            await stack.kill(name)
    assert {v["status"] for v in views} == {"confirmed"}
    assert len({v["txid"] for v in views}) == 1  # ONE transaction for the whole batch
    # on chain: each destination holds exactly its amount, once
    codec = BitcoinAddresses(network)
    found = await ltc.call(
        "scantxoutset", "start", [f"raw({codec.match_key(a)})" for a in outputs], wallet=False
    )
    got = sorted(int(Decimal(str(u["amount"])) * 10**8) for u in found["unspents"])
    assert got == sorted(outputs.values())
    # one signed transaction recorded; every input locked to it alone
    try:
        txs = await db.fetch("SELECT id, txid FROM withdrawal_txs")
        assert [t["txid"] for t in txs] == [views[0]["txid"]]
        locked = await db.fetch(
            "SELECT DISTINCT locked_by FROM wallet_coins WHERE locked_by IS NOT NULL"
        )
        assert [r["locked_by"] for r in locked] == [txs[0]["id"]]
    finally:
        await db.close()
