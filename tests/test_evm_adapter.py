"""EvmAdapter against a real anvil, through a real EndpointPool.

Each test makes real transactions (ETH, DevToken transfers, failing tokens, internal transfers
through the Forwarder contract) and checks what scan() reports for the blocks that hold them.
"""

from __future__ import annotations

import itertools
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chaingate.chains.base import Check
from chaingate.chains.evm.adapter import EvmAdapter, LogSource
from chaingate.chains.evm.addresses import address_bytes
from chaingate.chains.evm.codec import TRANSFER_TOPIC
from chaingate.chains.evm.rpc import EvmRpc
from chaingate.devnet import evm_contracts as dev
from chaingate.domain import (
    Asset,
    AssetStandard,
    Endpoint,
    Network,
    NetworkKind,
    RejectReason,
    Transfer,
)
from chaingate.errors import ChainDataError, RequestTooLargeError, RpcError
from chaingate.providers import EndpointPool

ROOT = Path(__file__).resolve().parents[1]
ANVIL = ROOT / "node_modules" / ".bin" / "anvil"
SENDER = dev.ANVIL_ACCOUNTS[0]
E18 = 10**18


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_serving(url: str, proc: subprocess.Popen[bytes]) -> None:
    import json
    import urllib.request

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"}).encode()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"anvil exited with {proc.returncode}")
        try:
            request = urllib.request.Request(url, body, {"content-type": "application/json"})
            with urllib.request.urlopen(request, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("anvil did not start")


@pytest.fixture(scope="module")
def anvil_url() -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    # Own process group: the npm launcher runs the anvil binary as its child, and both must go.
    proc = subprocess.Popen(
        [str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_until_serving(url, proc)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


@dataclass(frozen=True)
class Devnet:
    url: str
    nexo: str  # listed NEXO token
    lookalike: str  # another DevToken calling itself NEXO, not listed
    bad: str  # listed token whose fail mode the tests switch
    forwarder: str
    network: Network


@pytest.fixture(scope="module")
async def devnet(anvil_url: str) -> Devnet:
    nexo = await dev.deploy_dev_token(anvil_url, "Nexo", "NEXO", 18, 10**9 * E18)
    lookalike = await dev.deploy_dev_token(anvil_url, "Nexo", "NEXO", 18, 10**9 * E18)
    bad = await dev.deploy_dev_token(anvil_url, "Bad Token", "BAD", 6, 10**15)
    forwarder = await dev.deploy_forwarder(anvil_url)
    network = Network(
        name="ethereum-devnet",
        kind=NetworkKind.EVM,
        confirmations=2,
        block_time=1.0,
        poll_interval=1.0,
        endpoints=(Endpoint(name="anvil", url=anvil_url, max_log_range=1000),),
        assets=(
            Asset("ETH", 18, AssetStandard.NATIVE, min_deposit=10**15),
            Asset("NEXO", 18, AssetStandard.ERC20, contract=nexo.lower(), min_deposit=E18),
            Asset("BAD", 6, AssetStandard.ERC20, contract=bad.lower()),
        ),
        chain_id=31337,
        tracing=True,
    )
    return Devnet(anvil_url, nexo, lookalike, bad, forwarder, network)


@pytest.fixture(scope="module")
async def pool(devnet: Devnet) -> AsyncIterator[EndpointPool]:
    async with EndpointPool(devnet.network.name, devnet.network.endpoints) as endpoint_pool:
        yield endpoint_pool


@pytest.fixture(params=["get_logs", "receipts"])
def adapter(devnet: Devnet, pool: EndpointPool, request: pytest.FixtureRequest) -> EvmAdapter:
    """Each test twice: Transfer logs from eth_getLogs, and from every block's receipts (the
    dense path, chosen by LogSource); both must report the same Transfers."""
    adapter = EvmAdapter(devnet.network, pool)
    adapter.log_source = LogSource(threshold=0.0 if request.param == "receipts" else 2.0)
    return adapter


def new_address() -> str:
    """A fresh deposit address (lowercase match key) no other test touches."""
    return "0x" + secrets.token_hex(20)


async def block_of(url: str, txid: str) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url,
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "eth_getTransactionReceipt",
                "params": [txid],
            },
        ) as resp,
    ):
        receipt = (await resp.json())["result"]
    return int(receipt["blockNumber"], 16)


async def receipt_status(url: str, txid: str) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url,
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "eth_getTransactionReceipt",
                "params": [txid],
            },
        ) as resp,
    ):
        return int((await resp.json())["result"]["status"], 16)


async def scan_txs(
    adapter: EvmAdapter, url: str, txids: Sequence[str], watched: set[str]
) -> list[Transfer]:
    numbers = [await block_of(url, txid) for txid in txids]
    result = await adapter.scan(min(numbers), max(numbers), {address_bytes(k) for k in watched})
    return list(result.transfers)


# --- native ETH and listed tokens -------------------------------------------------------------


async def test_eth_and_token_deposits_decoded_with_exact_amounts(
    devnet: Devnet, adapter: EvmAdapter
) -> None:
    alice, bob, stranger = new_address(), new_address(), new_address()
    eth_tx = await dev.send_eth(devnet.url, SENDER, alice, 3 * E18 + 1)
    nexo_tx = await dev.token_transfer(devnet.url, devnet.nexo, SENDER, bob, 1234 * E18 + 5)
    await dev.send_eth(devnet.url, SENDER, stranger, E18)  # not watched: must not appear
    await dev.token_transfer(devnet.url, devnet.nexo, SENDER, stranger, E18)
    last = await dev.send_eth(devnet.url, SENDER, stranger, 1)

    start, end = await block_of(devnet.url, eth_tx), await block_of(devnet.url, last)
    result = await adapter.scan(start, end, {address_bytes(alice), address_bytes(bob)})

    assert [b.number for b in result.blocks] == list(range(start, end + 1))
    for ref in result.blocks:
        assert ref == await adapter.block_ref(ref.number)
    by_tx = {t.txid: t for t in result.transfers}
    assert len(result.transfers) == 2
    eth, nexo = by_tx[eth_tx], by_tx[nexo_tx]
    assert (eth.position, eth.to, eth.amount, eth.asset, eth.contract, eth.reject_reason) == (
        "native",
        alice,
        3 * E18 + 1,
        "ETH",
        None,
        None,
    )
    assert (nexo.position, nexo.to, nexo.amount, nexo.asset, nexo.contract) == (
        "log:0",
        bob,
        1234 * E18 + 5,
        "NEXO",
        devnet.nexo.lower(),
    )
    assert nexo.reject_reason is None
    nexo_block = result.blocks[nexo.block_number - start]  # type: ignore[operator]
    assert (nexo.block_hash, nexo.network) == (nexo_block.hash, "ethereum-devnet")


async def test_dust_is_reported_not_filtered(devnet: Devnet, adapter: EvmAdapter) -> None:
    # The core records dust as rejected; the adapter must still hand it over.
    alice = new_address()
    tx = await dev.token_transfer(devnet.url, devnet.nexo, SENDER, alice, 1)
    (transfer,) = await scan_txs(adapter, devnet.url, [tx], {alice})
    assert (transfer.amount, transfer.asset, transfer.reject_reason) == (1, "NEXO", None)


async def test_transfer_from_to_a_deposit_address_is_found(
    devnet: Devnet, adapter: EvmAdapter
) -> None:
    spender, alice = dev.ANVIL_ACCOUNTS[1], new_address()
    await dev.token_approve(devnet.url, devnet.nexo, SENDER, spender, 50 * E18)
    tx = await dev.token_transfer_from(devnet.url, devnet.nexo, spender, SENDER, alice, 50 * E18)
    (transfer,) = await scan_txs(adapter, devnet.url, [tx], {alice})
    assert (transfer.asset, transfer.amount, transfer.position) == ("NEXO", 50 * E18, "log:0")


# --- rules of section 5 ------------------------------------------------------------------------


async def test_lookalike_token_with_the_same_symbol_is_unlisted(
    devnet: Devnet, adapter: EvmAdapter
) -> None:
    alice = new_address()
    tx = await dev.token_transfer(devnet.url, devnet.lookalike, SENDER, alice, 500 * E18)
    (transfer,) = await scan_txs(adapter, devnet.url, [tx], {alice})
    assert transfer.reject_reason is RejectReason.UNLISTED_TOKEN
    assert (transfer.asset, transfer.contract) == (None, devnet.lookalike.lower())
    assert (transfer.amount, transfer.to) == (500 * E18, alice)


async def test_reverted_token_transfer_is_failed_tx(devnet: Devnet, adapter: EvmAdapter) -> None:
    alice = new_address()
    await dev.set_fail_mode(devnet.url, devnet.bad, 2)
    try:
        tx = await dev.token_transfer(devnet.url, devnet.bad, SENDER, alice, 777, gas=100_000)
    finally:
        await dev.set_fail_mode(devnet.url, devnet.bad, 0)
    assert await receipt_status(devnet.url, tx) == 0
    (transfer,) = await scan_txs(adapter, devnet.url, [tx], {alice})
    assert transfer.reject_reason is RejectReason.FAILED_TX
    assert (transfer.asset, transfer.amount, transfer.to) == ("BAD", 777, alice)
    assert transfer.position == "call" and transfer.contract == devnet.bad.lower()


async def test_token_returning_false_is_no_transfer_event(
    devnet: Devnet, adapter: EvmAdapter
) -> None:
    alice = new_address()
    await dev.set_fail_mode(devnet.url, devnet.bad, 1)
    try:
        tx = await dev.token_transfer(devnet.url, devnet.bad, SENDER, alice, 888)
    finally:
        await dev.set_fail_mode(devnet.url, devnet.bad, 0)
    assert await receipt_status(devnet.url, tx) == 1  # "succeeded" and moved nothing
    assert await dev.token_balance(devnet.url, devnet.bad, alice) == 0
    (transfer,) = await scan_txs(adapter, devnet.url, [tx], {alice})
    assert transfer.reject_reason is RejectReason.NO_TRANSFER_EVENT
    assert (transfer.asset, transfer.amount, transfer.position) == ("BAD", 888, "call")


async def test_successful_listed_token_call_yields_only_its_log(
    devnet: Devnet, adapter: EvmAdapter
) -> None:
    # The call candidate must not double the deposit its Transfer log already reports.
    alice = new_address()
    tx = await dev.token_transfer(devnet.url, devnet.bad, SENDER, alice, 999)
    transfers = await scan_txs(adapter, devnet.url, [tx], {alice})
    assert [(t.position, t.amount, t.reject_reason) for t in transfers] == [("log:0", 999, None)]


# --- internal transfers ------------------------------------------------------------------------


async def test_internal_transfers_found_with_tracing(devnet: Devnet, adapter: EvmAdapter) -> None:
    alice, bob = new_address(), new_address()
    one = await dev.forward_eth(devnet.url, devnet.forwarder, SENDER, alice, 2 * E18)
    both = await dev.forward_both(devnet.url, devnet.forwarder, SENDER, alice, bob, 5)
    transfers = await scan_txs(adapter, devnet.url, [one, both], {alice, bob})
    got = sorted((t.txid == one, t.position, t.to, t.amount, t.asset) for t in transfers)
    assert got == sorted(
        [
            (True, "trace:0", alice, 2 * E18, "ETH"),
            (False, "trace:0", alice, 2, "ETH"),
            (False, "trace:1", bob, 3, "ETH"),
        ]
    )


async def test_forward_then_revert_yields_nothing(devnet: Devnet, adapter: EvmAdapter) -> None:
    alice = new_address()
    tx = await dev.forward_eth(devnet.url, devnet.forwarder, SENDER, alice, E18, then_revert=True)
    assert await receipt_status(devnet.url, tx) == 0
    assert await scan_txs(adapter, devnet.url, [tx], {alice}) == []


async def test_without_tracing_internal_transfers_are_not_reported(
    devnet: Devnet, pool: EndpointPool
) -> None:
    alice = new_address()
    adapter = EvmAdapter(replace(devnet.network, tracing=False), pool)
    tx = await dev.forward_eth(devnet.url, devnet.forwarder, SENDER, alice, E18)
    assert await scan_txs(adapter, devnet.url, [tx], {alice}) == []


class Counting:
    """Passes every call to the pool and records the methods asked."""

    def __init__(self, inner: EndpointPool) -> None:
        self.inner = inner
        self.methods: list[str] = []

    async def request(
        self,
        method: str,
        params: Sequence[Any] = (),
        *,
        idempotent: bool = True,
        check: Check | None = None,
    ) -> Any:
        self.methods.append(method)
        return await self.inner.request(method, params, idempotent=idempotent, check=check)

    async def batch(
        self,
        calls: Sequence[tuple[str, Sequence[Any]]],
        *,
        checks: Sequence[Check | None] | None = None,
    ) -> list[Any]:
        self.methods.extend(m for m, _ in calls)
        return await self.inner.batch(calls, checks=checks)


class NoBlockTracing(Counting):
    """An endpoint without debug_traceBlockByNumber (some hosted plans). No such node runs
    here, so this wrapper refuses that one method and passes everything else to real anvil."""

    async def batch(
        self,
        calls: Sequence[tuple[str, Sequence[Any]]],
        *,
        checks: Sequence[Check | None] | None = None,
    ) -> list[Any]:
        if any(m == "debug_traceBlockByNumber" for m, _ in calls):
            self.methods.extend(m for m, _ in calls)
            raise RpcError("the method debug_traceBlockByNumber does not exist", -32601)
        return await super().batch(calls, checks=checks)


async def test_per_transaction_tracing_fallback(devnet: Devnet, pool: EndpointPool) -> None:
    client = NoBlockTracing(pool)
    adapter = EvmAdapter(devnet.network, client)
    alice = new_address()
    tx = await dev.forward_eth(devnet.url, devnet.forwarder, SENDER, alice, 7)
    (transfer,) = await scan_txs(adapter, devnet.url, [tx], {alice})
    assert (transfer.position, transfer.amount) == ("trace:0", 7)
    assert "debug_traceTransaction" in client.methods
    # Later scans go straight to the fallback.
    client.methods.clear()
    await scan_txs(adapter, devnet.url, [tx], {alice})
    assert "debug_traceBlockByNumber" not in client.methods


# --- answers are checked where they enter -------------------------------------------------------


class Tampering:
    """Rewrites one answer of a real anvil, as a broken or lying endpoint would."""

    def __init__(self, inner: EndpointPool, method: str, edit: Any) -> None:
        self.inner, self.method, self.edit = inner, method, edit

    # The checks run on the edited answer, as the pool runs them on what an endpoint sent.
    async def request(
        self,
        method: str,
        params: Sequence[Any] = (),
        *,
        idempotent: bool = True,
        check: Check | None = None,
    ) -> Any:
        result = await self.inner.request(method, params, idempotent=idempotent)
        result = self.edit(result) if method == self.method else result
        if check is not None:
            check(result)
        return result

    async def batch(
        self,
        calls: Sequence[tuple[str, Sequence[Any]]],
        *,
        checks: Sequence[Check | None] | None = None,
    ) -> list[Any]:
        results = await self.inner.batch(calls)
        edited = [
            self.edit(r) if m == self.method else r
            for (m, _), r in zip(calls, results, strict=True)
        ]
        for result, check in zip(edited, checks or [None] * len(edited), strict=True):
            if check is not None:
                check(result)
        return edited


def _other_block_number(block: dict[str, Any]) -> dict[str, Any]:
    return {**block, "number": hex(int(block["number"], 16) + 1)}


def _foreign_receipts(receipts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "blockHash": "0x" + "ee" * 32} for r in receipts]


def _logs_outside_range(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**entry, "blockNumber": "0x0"} for entry in logs]


@pytest.mark.parametrize(
    ("method", "edit"),
    [
        ("eth_getBlockByNumber", _other_block_number),
        ("eth_getBlockReceipts", _foreign_receipts),
        ("eth_getLogs", _logs_outside_range),
    ],
)
async def test_answers_contradicting_the_question_are_chain_data_errors(
    devnet: Devnet, pool: EndpointPool, method: str, edit: Any
) -> None:
    alice = new_address()
    token_tx = await dev.token_transfer(devnet.url, devnet.nexo, SENDER, alice, E18)
    tx = await dev.send_eth(devnet.url, SENDER, alice, E18)
    adapter = EvmAdapter(devnet.network, Tampering(pool, method, edit))
    with pytest.raises(ChainDataError):
        await scan_txs(adapter, devnet.url, [token_tx, tx], {alice})


async def test_unlinked_blocks_are_a_chain_data_error(devnet: Devnet, pool: EndpointPool) -> None:
    def rewrite_parent(block: dict[str, Any]) -> dict[str, Any]:
        return {**block, "parentHash": "0x" + "99" * 32}

    adapter = EvmAdapter(devnet.network, Tampering(pool, "eth_getBlockByNumber", rewrite_parent))
    await dev.mine(devnet.url, 2)
    head = (await adapter.head()).number
    with pytest.raises(ChainDataError):
        await adapter.scan(head - 1, head, set())


class LogRangeCap:
    """An endpoint capping eth_getLogs at ``cap`` blocks (Chainstack plans cap at 100 or 10,000);
    it refuses larger ranges the way the provider layer reports it."""

    def __init__(self, inner: EndpointPool, cap: int) -> None:
        self.inner, self.cap = inner, cap
        self.ranges: list[tuple[int, int]] = []

    async def request(
        self,
        method: str,
        params: Sequence[Any] = (),
        *,
        idempotent: bool = True,
        check: Check | None = None,
    ) -> Any:
        if method == "eth_getLogs":
            start, end = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
            self.ranges.append((start, end))
            if end - start + 1 > self.cap:
                raise RequestTooLargeError("query exceeds max block range", -32005)
        return await self.inner.request(method, params, idempotent=idempotent, check=check)

    async def batch(
        self,
        calls: Sequence[tuple[str, Sequence[Any]]],
        *,
        checks: Sequence[Check | None] | None = None,
    ) -> list[Any]:
        return await self.inner.batch(calls, checks=checks)


async def test_log_ranges_are_chunked_and_halved_when_refused(
    devnet: Devnet, pool: EndpointPool
) -> None:
    alice = new_address()
    txs = [await dev.token_transfer(devnet.url, devnet.nexo, SENDER, alice, i) for i in (1, 2, 3)]
    await dev.mine(devnet.url, 5)
    first, last = await block_of(devnet.url, txs[0]), await block_of(devnet.url, txs[-1])
    capped = LogRangeCap(pool, cap=2)
    logs = await EvmRpc(capped, "ethereum-devnet").get_logs(
        first - 3, last + 4, [TRANSFER_TOPIC], max_range=4
    )
    to_alice = [entry for entry in logs if entry["topics"][2].endswith(alice[2:])]
    assert [int(entry["data"], 16) for entry in to_alice] == [1, 2, 3]
    served = [r for r in capped.ranges if r[1] - r[0] + 1 <= 2]
    assert served[0][0] == first - 3 and served[-1][1] == last + 4
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(served))


async def test_head_is_the_node_block_number(devnet: Devnet, adapter: EvmAdapter) -> None:
    before = (await adapter.head()).number
    await dev.mine(devnet.url, 3)
    assert (await adapter.head()).number == before + 3
    assert await adapter.pending({address_bytes(new_address())}) == []


async def test_logs_from_another_branch_are_a_chain_data_error(
    devnet: Devnet, pool: EndpointPool
) -> None:
    # Even a log to nobody we watch: it shows the chain moved between the two calls.
    def other_branch(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**entry, "blockHash": "0x" + "77" * 32} for entry in logs]

    tx = await dev.token_transfer(devnet.url, devnet.nexo, SENDER, new_address(), E18)
    adapter = EvmAdapter(devnet.network, Tampering(pool, "eth_getLogs", other_branch))
    with pytest.raises(ChainDataError, match="another branch"):
        await scan_txs(adapter, devnet.url, [tx], {new_address()})
