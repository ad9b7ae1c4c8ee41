"""The Bitcoin adapter against a real litecoind 0.21 regtest node (Bitcoin Core RPC and scripts).

The node prints its addresses with the hrp ``rltc``; the gateway shows ``bcrt``. Both are the
same witness program, and the adapter matches scriptPubKeys, so we pay the ``rltc`` form.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from chaingate.chains.base import Check
from chaingate.chains.bitcoin import BitcoinAdapter
from chaingate.chains.bitcoin.bech32 import decode_segwit, encode_segwit
from chaingate.domain import Asset, AssetStandard, Endpoint, Network, NetworkKind, ScanResult
from chaingate.errors import BlockNotFoundError, RpcError

LITECOIND = "/usr/bin/litecoind"
# BIP84 testnet account key of the "abandon ... about" mnemonic (m/84'/1'/0').
DEPOSIT_VPUB = (
    "vpub5Y6cjg78GGuNLsaPhmYsiw4gYX3HoQiRBiSwDaBXKUafCt9bNwWQiitDk5VZ5BVxYnQdwoTyXSs2JHRP"
    "AgjAvtbBrf8ZhDYe2jWAqvZVnsc"
)

pytestmark = pytest.mark.skipif(shutil.which(LITECOIND) is None, reason="litecoind not installed")


class NodeRpc:
    """A minimal JSON-RPC client decoding numbers as Decimal, as the provider pool does.

    Stand-in for EndpointPool in these tests: the pool's first cut still decodes JSON floats as
    float, which the adapter refuses for money. It talks to the real node; nothing is mocked.
    """

    def __init__(self, url: str, user: str, password: str) -> None:
        self.url = url
        self.headers = {
            "Authorization": aiohttp.encode_basic_auth(user, password),
            "Content-Type": "application/json",
        }
        self.session: aiohttp.ClientSession | None = None
        self.ids = itertools.count(1)

    async def _post(self, body: Any) -> Any:
        assert self.session is not None
        # Amounts go out as strings, which Core parses exactly (never through a float).
        data = json.dumps(body, default=str)
        async with self.session.post(self.url, data=data, headers=self.headers) as resp:
            return json.loads(await resp.text(), parse_float=Decimal)

    async def request(
        self,
        method: str,
        params: Sequence[Any] = (),
        *,
        idempotent: bool = True,
        check: Check | None = None,
    ) -> Any:
        return (await self.batch([(method, params)], checks=[check]))[0]

    async def batch(
        self,
        calls: Sequence[tuple[str, Sequence[Any]]],
        *,
        checks: Sequence[Check | None] | None = None,
    ) -> list[Any]:
        body = [
            {"jsonrpc": "1.0", "id": next(self.ids), "method": m, "params": list(p)}
            for m, p in calls
        ]
        replies = sorted(await self._post(body), key=lambda r: r["id"])
        for reply in replies:
            if reply.get("error"):
                raise RpcError(reply["error"]["message"], reply["error"]["code"])
        results = [r["result"] for r in replies]
        for result, check in zip(results, checks or [None] * len(results), strict=True):
            if check is not None:
                check(result)
        return results


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest_asyncio.fixture(scope="module")
async def node() -> AsyncIterator[NodeRpc]:
    datadir = tempfile.mkdtemp(prefix="chaingate-ltc-")
    port, user, password = free_port(), "u" + secrets.token_hex(4), secrets.token_hex(16)
    proc = await asyncio.create_subprocess_exec(
        *[
            LITECOIND,
            "-regtest",
            "-server",
            "-listen=0",
            "-rpcbind=127.0.0.1",
            "-rpcallowip=127.0.0.1",
            f"-rpcport={port}",
            f"-datadir={datadir}",
            f"-rpcuser={user}",
            f"-rpcpassword={password}",
            "-fallbackfee=0.0001",
            "-txindex=1",
            "-printtoconsole=0",
            # litecoind ships with BIP125 replacement off; Bitcoin Core has it on.
            "-mempoolreplacement=1",
        ],
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    rpc = NodeRpc(f"http://127.0.0.1:{port}/", user, password)
    rpc.session = aiohttp.ClientSession()
    try:
        for _ in range(100):
            try:
                await rpc.request("getblockcount")
                break
            except (aiohttp.ClientError, RpcError):  # not listening yet / warming up (-28)
                await asyncio.sleep(0.1)
        await rpc.request("createwallet", ["miner"])
        await mine(rpc, 101)
        yield rpc
    finally:
        await rpc.session.close()
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout=30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        shutil.rmtree(datadir, ignore_errors=True)


async def mine(rpc: NodeRpc, blocks: int, address: str | None = None) -> list[str]:
    target = address or await rpc.request("getnewaddress")
    return list(await rpc.request("generatetoaddress", [blocks, target]))


def regtest_network() -> Network:
    return Network(
        name="bitcoin-devnet",
        kind=NetworkKind.BITCOIN,
        confirmations=2,
        block_time=1,
        poll_interval=1,
        endpoints=(Endpoint(name="litecoind", url="http://127.0.0.1"),),
        assets=(Asset("BTC", 8, AssetStandard.NATIVE),),
        hrp="bcrt",
        testnet=True,
        xpub=DEPOSIT_VPUB,
    )


@pytest.fixture
def adapter(node: NodeRpc) -> BitcoinAdapter:
    return BitcoinAdapter(regtest_network(), node)


def node_form(address: str) -> str:
    """The node's spelling (rltc) of one of our bcrt addresses: same witness program."""
    _, version, program = decode_segwit(address)
    return encode_segwit("rltc", version, program)


def deposit(adapter: BitcoinAdapter, index: int) -> tuple[str, str]:
    """(node address to pay, match key) of deposit address ``index``."""
    derived = adapter.addresses.derive(index)
    assert derived.address.startswith("bcrt1q")
    return node_form(derived.address), derived.match_key


async def scan_new_block(
    adapter: BitcoinAdapter, node: NodeRpc, watched: set[str]
) -> tuple[int, ScanResult]:
    await mine(node, 1)
    height = int(await node.request("getblockcount"))
    return height, await adapter.scan(height, height, {bytes.fromhex(k) for k in watched})


# --- blocks ------------------------------------------------------------------------------------
async def test_payment_is_found_with_exact_satoshis(adapter: BitcoinAdapter, node: NodeRpc) -> None:
    pay_to, key = deposit(adapter, 0)
    txid = await node.request("sendtoaddress", [pay_to, Decimal("1.23456789")])
    height, result = await scan_new_block(adapter, node, {key})
    assert (await adapter.head()).number == height
    [found] = result.transfers
    assert (found.txid, found.to, found.amount, found.asset) == (txid, key, 123_456_789, "BTC")
    assert found.block_number == height and found.block_hash == result.blocks[0].hash
    assert not found.coinbase
    tx = await node.request("getrawtransaction", [txid, True])
    assert tx["vout"][int(found.position.split(":")[1])]["scriptPubKey"]["hex"] == key


async def test_two_outputs_to_one_address_in_one_tx_are_two_deposits(
    adapter: BitcoinAdapter, node: NodeRpc
) -> None:
    pay_to, key = deposit(adapter, 1)
    placeholder = await node.request("getnewaddress", ["", "bech32"])
    raw = await node.request(
        "createrawtransaction", [[], [{pay_to: Decimal("0.5")}, {placeholder: Decimal("0.25")}]]
    )
    funded = await node.request("fundrawtransaction", [raw])
    # Core refuses the same address twice in one call; point the second output at our script.
    placeholder_script = (await node.request("getaddressinfo", [placeholder]))["scriptPubKey"]
    doubled = funded["hex"].replace(placeholder_script, key)
    signed = await node.request("signrawtransactionwithwallet", [doubled])
    txid = await node.request("sendrawtransaction", [signed["hex"]])
    _, result = await scan_new_block(adapter, node, {key})
    mine_outputs = sorted((t.position, t.amount) for t in result.transfers if t.txid == txid)
    assert sorted(amount for _, amount in mine_outputs) == [25_000_000, 50_000_000]
    assert len({position for position, _ in mine_outputs}) == 2


async def test_sendmany_to_two_deposit_addresses(adapter: BitcoinAdapter, node: NodeRpc) -> None:
    (a, key_a), (b, key_b) = deposit(adapter, 2), deposit(adapter, 3)
    txid = await node.request("sendmany", ["", {a: Decimal("0.1"), b: Decimal("0.00012345")}])
    _, result = await scan_new_block(adapter, node, {key_a, key_b})
    assert sorted((t.txid, t.to, t.amount) for t in result.transfers) == sorted(
        [(txid, key_a, 10_000_000), (txid, key_b, 12_345)]
    )


async def test_coinbase_output_to_our_script_is_flagged(
    adapter: BitcoinAdapter, node: NodeRpc
) -> None:
    pay_to, key = deposit(adapter, 4)
    [block_hash] = await mine(node, 1, pay_to)
    height = await node.request("getblockcount")
    result = await adapter.scan(height, height, {bytes.fromhex(key)})
    [found] = result.transfers
    block = await node.request("getblock", [block_hash, 2])
    coinbase = block["tx"][0]
    assert found.coinbase and found.txid == coinbase["txid"] and found.position == "vout:0"
    assert found.amount == int(coinbase["vout"][0]["value"] * 100_000_000)


async def test_scan_of_a_range_returns_linked_blocks(
    adapter: BitcoinAdapter, node: NodeRpc
) -> None:
    head = (await adapter.head()).number
    result = await adapter.scan(head - 30, head, set())
    assert [b.number for b in result.blocks] == list(range(head - 30, head + 1))
    for parent, child in itertools.pairwise(result.blocks):
        assert child.parent_hash == parent.hash
    assert result.blocks[-1] == await adapter.block_ref(head)


async def test_blocks_above_the_tip_are_not_found(adapter: BitcoinAdapter, node: NodeRpc) -> None:
    head = (await adapter.head()).number
    with pytest.raises(BlockNotFoundError):
        await adapter.scan(head, head + 1, set())


# --- mempool --------------------------------------------------------------------------------------
async def test_mempool_payment_is_pending_until_replaced_by_fee(
    adapter: BitcoinAdapter, node: NodeRpc
) -> None:
    pay_to, key = deposit(adapter, 5)
    coin = max(await node.request("listunspent", [1]), key=lambda u: u["amount"])
    spend = [{"txid": coin["txid"], "vout": coin["vout"]}]
    change = await node.request("getrawchangeaddress")
    outputs = {pay_to: Decimal("2"), change: coin["amount"] - Decimal("2.0001")}
    raw = await node.request("createrawtransaction", [spend, outputs, 0, True])  # RBF
    signed = await node.request("signrawtransactionwithwallet", [raw])
    txid = await node.request("sendrawtransaction", [signed["hex"]])

    [seen] = await adapter.pending({bytes.fromhex(key)})
    assert (seen.txid, seen.amount, seen.block_number, seen.block_hash) == (
        txid,
        200_000_000,
        None,
        None,
    )
    # The payer double-spends the same coin back to itself with a higher fee.
    back = await node.request("getnewaddress")
    replacement = await node.request(
        "createrawtransaction", [spend, {back: coin["amount"] - Decimal("0.001")}, 0, True]
    )
    signed = await node.request("signrawtransactionwithwallet", [replacement])
    replacing_txid = await node.request("sendrawtransaction", [signed["hex"]])
    mempool = await node.request("getrawmempool")
    assert replacing_txid in mempool and txid not in mempool

    assert await adapter.pending({bytes.fromhex(key)}) == []
    _, result = await scan_new_block(adapter, node, {key})
    assert result.transfers == ()  # the replaced payment is never mined, never a deposit


async def test_pending_drops_transactions_once_mined(
    adapter: BitcoinAdapter, node: NodeRpc
) -> None:
    pay_to, key = deposit(adapter, 6)
    txid = await node.request("sendtoaddress", [pay_to, Decimal("0.3")])
    assert [t.txid for t in await adapter.pending({bytes.fromhex(key)})] == [txid]
    await mine(node, 1)
    assert await adapter.pending({bytes.fromhex(key)}) == []


async def test_address_watched_after_its_payment_was_decoded_still_sees_it_pending(
    adapter: BitcoinAdapter, node: NodeRpc
) -> None:
    pay_to, key = deposit(adapter, 8)
    txid = await node.request("sendtoaddress", [pay_to, Decimal("0.25")])
    # The payment is decoded while the address is not yet in the watched set (it was issued a
    # moment ago and the watcher has not refreshed its address book yet) ...
    assert await adapter.pending(set()) == []
    # ... and is still found, without fetching it again, once the address is watched.
    [seen] = await adapter.pending({bytes.fromhex(key)})
    assert (seen.txid, seen.amount, seen.to, seen.block_number) == (txid, 25_000_000, key, None)
    assert seen.position.startswith("vout:") and seen.coinbase is False
    await mine(node, 1)


# --- reorgs ---------------------------------------------------------------------------------------
async def test_invalidated_block_changes_block_ref_and_its_deposit_returns(
    adapter: BitcoinAdapter, node: NodeRpc
) -> None:
    pay_to, key = deposit(adapter, 7)
    txid = await node.request("sendtoaddress", [pay_to, Decimal("0.7")])
    height, before = await scan_new_block(adapter, node, {key})
    old_ref = await adapter.block_ref(height)
    assert [t.txid for t in before.transfers] == [txid]

    await node.request("invalidateblock", [old_ref.hash])
    # The payment is back in the mempool: pending again, not confirmed.
    assert [t.txid for t in await adapter.pending({bytes.fromhex(key)})] == [txid]
    await mine(node, 2, await node.request("getnewaddress", ["", "legacy"]))
    new_ref = await adapter.block_ref(height)
    assert new_ref.hash != old_ref.hash and new_ref.parent_hash == old_ref.parent_hash

    after = await adapter.scan(height, height + 1, {bytes.fromhex(key)})
    [again] = after.transfers
    assert again.txid == txid and again.block_hash != old_ref.hash
    await node.request("reconsiderblock", [old_ref.hash])  # the longer branch stays canonical
    assert await adapter.block_ref(height) == new_ref
