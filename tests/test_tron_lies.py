"""A TRON endpoint whose JSON lies about a failed TRC-20 transfer, through the real watcher.

The two verdicts on a contract call live in different answers: ``ret[0].contractRet`` in the
block, ``receipt.result`` in the transaction info. Neither is covered by the txID, so an endpoint
can forge either. Each test forges one of them (and the Transfer log a success would carry) for
a transfer that really failed on the TRON devnet (REVERT, OUT_OF_ENERGY); the other verdict alone
must keep it from being credited. Remove either check in chains/tron/codec.py and its test fails.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from chaindrivers.tron import SENDER_ADDRESS
from chaingate.chains.tron.addresses import base58_to_hex
from chaingate.devnet.manager import DevnetState
from faultproxy import free_port
from harness import Gateway, devnet_network, gateway, settle
from test_deposits_tron import SOLIDIFY_LAG, Devnet, chain, usdt

__all__ = ["chain"]  # the fixture, imported for its side of pytest's name lookup

TRANSFER_TOPIC = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
Edit = Callable[[str, Any], Any]


class TronLiar:
    """Forwards java-tron HTTP calls to the devnet and lets a test rewrite the answers."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.edits: list[Edit] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self._client = aiohttp.ClientSession()
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._client is not None
        body = await request.read()
        async with self._client.post(self.upstream + request.path, data=body) as resp:
            reply = await resp.json(content_type=None)
        for edit in self.edits:
            reply = edit(request.path, reply)
        return web.json_response(reply)


def _blocks(path: str, reply: Any) -> list[dict[str, Any]]:
    if path.endswith("getblockbylimitnext") and isinstance(reply, dict):
        return list(reply.get("block", []))
    if path.endswith(("getblockbynum", "getnowblock")) and isinstance(reply, dict):
        return [reply]
    return []


def forge_contract_ret(txid: str) -> Edit:
    def edit(path: str, reply: Any) -> Any:
        for block in _blocks(path, reply):
            for tx in block.get("transactions", []):
                if tx["txID"] == txid:
                    tx["ret"] = [{"contractRet": "SUCCESS"}]
        return reply

    return edit


def forge_info(txid: str, log: dict[str, Any], receipt_too: bool) -> Edit:
    """Add the Transfer log a success would carry; with ``receipt_too`` also claim SUCCESS."""

    def edit(path: str, reply: Any) -> Any:
        if path.endswith("gettransactioninfobyblocknum") and isinstance(reply, list):
            for info in reply:
                if info["id"] == txid:
                    info["log"] = [log]
                    if receipt_too:
                        info["receipt"]["result"] = "SUCCESS"
                        info.pop("result", None)
        return reply

    return edit


def transfer_log(contract: str, to: str, amount: int) -> dict[str, Any]:
    word = "00" * 12
    return {
        "address": base58_to_hex(contract)[2:],
        "topics": [
            TRANSFER_TOPIC,
            word + base58_to_hex(SENDER_ADDRESS)[2:],
            word + base58_to_hex(to)[2:],
        ],
        "data": f"{amount:064x}",
    }


@pytest.fixture
async def liar(devnet: DevnetState) -> AsyncIterator[TronLiar]:
    proxy = TronLiar(devnet.tron_url or "")
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


@pytest.fixture
async def gw(
    liar: TronLiar, chain: Devnet, db: asyncpg.Pool, ledger_url: str
) -> AsyncIterator[Gateway]:
    head = await chain.mine(1)
    network = devnet_network("tron-devnet", liar.url, start_height=head + 1)
    async with gateway(network, db, ledger_url) as gateway_:
        yield gateway_


@pytest.mark.parametrize(
    ("failure", "forged"),
    [
        ("REVERT", "contract_ret"),  # the receipt check alone must hold
        ("OUT_OF_ENERGY", "receipt"),  # the contractRet check alone must hold
    ],
)
async def test_a_failed_trc20_transfer_with_one_forged_verdict_is_never_credited(
    gw: Gateway, chain: Devnet, liar: TronLiar, failure: str, forged: str
) -> None:
    user = f"tess-{failure.lower()}"
    address = await gw.address(user)
    await chain.control("fail-next", mode=failure)
    txid = await chain.pay_trc20(usdt(gw.network), address, 9_000_000)
    log = transfer_log(usdt(gw.network), address, 9_000_000)
    if forged == "contract_ret":
        liar.edits += [forge_contract_ret(txid), forge_info(txid, log, receipt_too=False)]
    else:
        liar.edits.append(forge_info(txid, log, receipt_too=True))
    await chain.mine(SOLIDIFY_LAG + 2)
    await settle(gw)
    deposits = {d["txid"]: d for d in await gw.deposits(user)}
    assert {t: (d["status"], d["reason"]) for t, d in deposits.items()} == {
        txid: ("rejected", "failed_tx")
    }
    assert await gw.balances(user) == {}
