"""The TRON adapter against the TRON devnet (an HTTP server in a subprocess), driven by tronpy."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tronpy import AsyncTron
from tronpy.exceptions import BadSignature
from tronpy.keys import PrivateKey
from tronpy.providers.async_http import AsyncHTTPProvider

from chaingate.chains.tron.adapter import TronAdapter
from chaingate.chains.tron.addresses import from_base58
from chaingate.chains.tron.codec import decode_block
from chaingate.devnet.tron_node import GENESIS_KEYS
from chaingate.domain import (
    Asset,
    AssetStandard,
    Endpoint,
    Network,
    NetworkKind,
    RejectReason,
    Transfer,
)
from chaingate.providers.pool import EndpointPool

DATA = Path(__file__).parent / "data" / "tron"
SENDER = PrivateKey(bytes.fromhex(GENESIS_KEYS[0]))
DEPOSIT = PrivateKey(bytes.fromhex("42" * 32)).public_key.to_base58check_address()
LAG = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def devnet_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chaingate.devnet.tron_node",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path_factory.mktemp("tron")),
            "--solidify-lag",
            str(LAG),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.post(url + "/wallet/getnowblock").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError("TRON devnet did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def ctl(url: str, control: str, **body: Any) -> Any:
    async with httpx.AsyncClient() as client:
        reply = await client.post(f"{url}/devnet/{control}", json=body)
        reply.raise_for_status()
        return reply.json()


@pytest.fixture(scope="module")
async def env(devnet_url: str) -> AsyncIterator[dict[str, Any]]:
    me = SENDER.public_key.to_base58check_address()
    usdt = (
        await ctl(devnet_url, "deploy-trc20", symbol="USDT", decimals=6, owner=me, supply=10**15)
    )["contract"]
    fake = (
        await ctl(devnet_url, "deploy-trc20", symbol="USDT", decimals=6, owner=me, supply=10**15)
    )["contract"]
    listed10 = await ctl(devnet_url, "issue-trc10", name="LISTED", owner=me, supply=10**9)
    unlisted10 = await ctl(devnet_url, "issue-trc10", name="LISTED", owner=me, supply=10**9)
    await ctl(devnet_url, "mine", count=LAG + 2)
    network = Network(
        name="tron-devnet",
        kind=NetworkKind.TRON,
        confirmations=3,
        block_time=3.0,
        poll_interval=1.0,
        endpoints=(Endpoint(name="tron-devnet", url=devnet_url),),
        assets=(
            Asset("TRX", 6, AssetStandard.NATIVE),
            Asset("USDT", 6, AssetStandard.TRC20, contract=usdt),
            Asset("LST", 0, AssetStandard.TRC10, contract=str(listed10["token_id"])),
        ),
    )
    async with EndpointPool(network.name, network.endpoints) as pool:
        yield {
            "network": network,
            "adapter": TronAdapter(network, pool),
            "usdt": usdt,
            "fake": fake,
            "unlisted10": unlisted10["token_id"],
            "me": me,
            "tron": AsyncTron(provider=AsyncHTTPProvider(devnet_url)),
            "url": devnet_url,
        }


async def mined_transfers(env: dict[str, Any], txid: str) -> list[Transfer]:
    await ctl(env["url"], "mine", count=1)
    adapter: TronAdapter = env["adapter"]
    head = (await adapter.head()).number
    result = await adapter.scan(head, head, {from_base58(DEPOSIT)})
    return [t for t in result.transfers if t.txid == txid]


async def send_trc20(env: dict[str, Any], contract: str, amount: int) -> str:
    token = await env["tron"].get_contract(contract)
    call = await token.functions.transfer(DEPOSIT, amount)
    tx = (await call.with_owner(env["me"]).fee_limit(100_000_000).build()).sign(SENDER)
    reply = await tx.broadcast()
    assert reply["result"] is True
    return str(tx.txid)


async def test_tronpy_trx_transfer_is_decoded_exactly(env: dict[str, Any]) -> None:
    tx = (await env["tron"].trx.transfer(env["me"], DEPOSIT, 1_234_567).build()).sign(SENDER)
    assert (await tx.broadcast())["result"] is True
    [transfer] = await mined_transfers(env, tx.txid)
    assert (transfer.asset, transfer.amount, transfer.position) == ("TRX", 1_234_567, "native")
    assert transfer.reject_reason is None and transfer.to == DEPOSIT


async def test_tronpy_trc20_transfer_is_decoded_exactly(env: dict[str, Any]) -> None:
    txid = await send_trc20(env, env["usdt"], 7_000_001)
    [transfer] = await mined_transfers(env, txid)
    assert (transfer.asset, transfer.amount, transfer.position) == ("USDT", 7_000_001, "log:0")
    assert transfer.contract == env["usdt"] and transfer.reject_reason is None
    token = await env["tron"].get_contract(env["usdt"])
    assert await token.functions.balanceOf(DEPOSIT) >= 7_000_001


@pytest.mark.parametrize("mode", ["REVERT", "OUT_OF_ENERGY"])
async def test_failed_trc20_is_in_a_block_and_rejected(env: dict[str, Any], mode: str) -> None:
    token = await env["tron"].get_contract(env["usdt"])
    before = await token.functions.balanceOf(DEPOSIT)
    await ctl(env["url"], "fail-next", mode=mode)
    txid = await send_trc20(env, env["usdt"], 5_000_000)
    [transfer] = await mined_transfers(env, txid)
    assert transfer.reject_reason is RejectReason.FAILED_TX
    assert (transfer.position, transfer.amount) == ("call", 5_000_000)
    info = await env["tron"].get_transaction_info(txid)
    assert info["receipt"]["result"] == mode and info["result"] == "FAILED"
    assert await token.functions.balanceOf(DEPOSIT) == before


async def test_lookalike_trc20_is_unlisted(env: dict[str, Any]) -> None:
    txid = await send_trc20(env, env["fake"], 9_000_000)
    [transfer] = await mined_transfers(env, txid)
    assert transfer.asset is None and transfer.reject_reason is RejectReason.UNLISTED_TOKEN
    assert transfer.contract == env["fake"]


async def test_unlisted_trc10_is_rejected(env: dict[str, Any]) -> None:
    tron: AsyncTron = env["tron"]
    await ctl(env["url"], "fund", address=DEPOSIT, amount_sun=1)  # TRC-10 needs the account
    tx = await tron.trx.asset_transfer(env["me"], DEPOSIT, 77, env["unlisted10"]).build()
    assert (await tx.sign(SENDER).broadcast())["result"] is True
    [transfer] = await mined_transfers(env, tx.txid)
    assert transfer.reject_reason is RejectReason.UNLISTED_TOKEN
    assert (transfer.contract, transfer.amount, transfer.position) == (
        str(env["unlisted10"]),
        77,
        "trc10",
    )


async def test_tampered_and_badly_signed_txs_are_refused(env: dict[str, Any]) -> None:
    tron: AsyncTron = env["tron"]
    tx = (await tron.trx.transfer(env["me"], DEPOSIT, 1_000).build()).sign(SENDER)
    tx._raw_data["contract"][0]["parameter"]["value"]["amount"] = 1_000_000
    with pytest.raises(BadSignature):
        await tx.broadcast()
    other = PrivateKey(bytes.fromhex("43" * 32))
    tx2 = await tron.trx.transfer(env["me"], DEPOSIT, 1_000).build()
    tx2._permission = None
    with pytest.raises(BadSignature):
        await tx2.sign(other).broadcast()


async def test_fork_drops_blocks_and_solid_head_lags(env: dict[str, Any]) -> None:
    adapter: TronAdapter = env["adapter"]
    await ctl(env["url"], "mine", count=2)
    head = await adapter.head()
    assert head.finalized == head.number - LAG
    before = await adapter.block_ref(head.number - 1)
    await ctl(env["url"], "fork", depth=2)
    await ctl(env["url"], "mine", count=2)
    after = await adapter.block_ref(head.number - 1)
    assert after.number == before.number and after.hash != before.hash
    assert (await adapter.block_ref(head.number - 2)).hash == before.parent_hash
    scan = await adapter.scan(head.number - 3, head.number, set())
    assert [b.number for b in scan.blocks] == list(range(head.number - 3, head.number + 1))


async def test_devnet_shapes_match_recorded_mainnet(env: dict[str, Any]) -> None:
    txid = await send_trc20(env, env["usdt"], 1)
    await ctl(env["url"], "mine", count=1)
    async with httpx.AsyncClient() as client:
        info = (
            await client.post(env["url"] + "/wallet/gettransactioninfobyid", json={"value": txid})
        ).json()
        block = (
            await client.post(
                env["url"] + "/wallet/getblockbynum", json={"num": info["blockNumber"]}
            )
        ).json()
    real_block = json.loads((DATA / "block_30864544.json").read_text())
    real_info = json.loads((DATA / "txinfo_block_30864600.json").read_text())[1]
    assert block.keys() == real_block.keys()
    assert block["block_header"].keys() == real_block["block_header"].keys()
    assert set(real_block["block_header"]["raw_data"]) <= set(block["block_header"]["raw_data"])
    assert set(real_block["transactions"][0]) <= set(block["transactions"][0])
    assert set(info) >= {
        "id",
        "blockNumber",
        "blockTimeStamp",
        "contractResult",
        "contract_address",
        "receipt",
        "log",
    }
    assert set(info["log"][0]) == set(real_info["log"][0])
    assert len(info["log"][0]["address"]) == 40 and not info["log"][0]["topics"][0].startswith("0x")
    assert real_info["receipt"]["result"] == info["receipt"]["result"] == "SUCCESS"
    decoded = decode_block(env["network"], block, [info], {from_base58(DEPOSIT)})
    assert [t.amount for t in decoded] == [1]
    await asyncio.sleep(0)
