"""Deploy and drive the devnet Solidity contracts (chains/contracts) on anvil.

Used by the devnet (it puts the NEXO stand-in on the devnet anvils) and by tests that need real
token transfers, failing tokens and internal ETH transfers. Every helper talks to anvil with
its unlocked default accounts (``eth_sendTransaction``), opens its own connection and closes it,
and returns once the transaction is mined (anvil mines on every transaction by default).

Pass ``gas=`` to skip gas estimation: that is how a test gets a *reverting* transaction mined
(estimation of a call that reverts fails before anything is sent).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any, TypedDict

from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.types import RPCEndpoint, TxParams, Wei

from chaingate.errors import ChaingateError

# anvil's default accounts 0..2 (from the well-known "test test ... junk" mnemonic), unlocked.
ANVIL_ACCOUNTS = (
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
)
DEFAULT_SENDER = ANVIL_ACCOUNTS[0]
RECEIPT_TIMEOUT = 30.0  # seconds; anvil mines instantly, this only bounds a stuck node


class Artifact(TypedDict):
    contractName: str
    compiler: str
    abi: list[dict[str, Any]]
    bytecode: str


class DevnetTxError(ChaingateError):
    """Raised when a devnet set-up transaction (deploy, mint, mode switch) did not succeed."""

    code = "devnet"


def contracts_dir() -> Path:
    """chains/contracts at the repository root (this file is src/chaingate/devnet/...)."""
    return Path(__file__).resolve().parents[3] / "chains" / "contracts"


@cache
def load_artifact(name: str) -> Artifact:
    """The compiled artifact ``chains/contracts/build/<name>.json`` (abi and bytecode)."""
    path = contracts_dir() / "build" / f"{name}.json"
    try:
        data: Artifact = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DevnetTxError(f"no artifact for {name}: run `npm run build-contracts`") from exc
    return data


@asynccontextmanager
async def _web3(rpc_url: str) -> AsyncIterator[AsyncWeb3[AsyncHTTPProvider]]:
    w3 = AsyncWeb3(AsyncHTTPProvider(rpc_url))
    try:
        yield w3
    finally:
        await w3.provider.disconnect()


def _params(sender: str, value: int = 0, gas: int | None = None) -> TxParams:
    params: TxParams = {"from": to_checksum_address(sender)}
    if value:
        params["value"] = value  # type: ignore[typeddict-item]
    if gas is not None:
        params["gas"] = gas
    return params


async def _mined(w3: AsyncWeb3[AsyncHTTPProvider], tx_hash: HexBytes) -> tuple[str, int]:
    receipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT)
    return "0x" + bytes(tx_hash).hex(), int(receipt["status"])


async def _call(
    rpc_url: str,
    name: str,
    address: str,
    function: str,
    args: tuple[Any, ...],
    params: TxParams,
    *,
    must_succeed: bool,
) -> str:
    async with _web3(rpc_url) as w3:
        contract = w3.eth.contract(
            address=to_checksum_address(address), abi=load_artifact(name)["abi"]
        )
        tx_hash = await contract.functions[function](*args).transact(params)
        txid, status = await _mined(w3, tx_hash)
    if must_succeed and status != 1:
        raise DevnetTxError(f"{name}.{function} failed in {txid}")
    return txid


async def deploy_contract(rpc_url: str, name: str, *args: Any, sender: str | None = None) -> str:
    """Deploy artifact ``name`` with constructor ``args``; the checksummed contract address."""
    artifact = load_artifact(name)
    async with _web3(rpc_url) as w3:
        factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        tx_hash = await factory.constructor(*args).transact(_params(sender or DEFAULT_SENDER))
        receipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT)
    address = receipt.get("contractAddress")
    if int(receipt["status"]) != 1 or not address:
        raise DevnetTxError(f"deploying {name} failed")
    return to_checksum_address(address)


async def deploy_dev_token(
    rpc_url: str,
    name: str,
    symbol: str,
    decimals: int,
    initial_supply: int,
    *,
    sender: str | None = None,
) -> str:
    """Deploy a DevToken; ``initial_supply`` base units go to ``sender`` (anvil account 0)."""
    return await deploy_contract(
        rpc_url, "DevToken", name, symbol, decimals, initial_supply, sender=sender
    )


async def deploy_forwarder(rpc_url: str, *, sender: str | None = None) -> str:
    """Deploy a Forwarder (internal ETH transfers on demand)."""
    return await deploy_contract(rpc_url, "Forwarder", sender=sender)


async def token_transfer(
    rpc_url: str, token: str, sender: str, to: str, amount: int, *, gas: int | None = None
) -> str:
    """``token.transfer(to, amount)`` from ``sender``; the txid (the tx may have failed when the
    token is in a fail mode: check its receipt)."""
    return await _call(
        rpc_url,
        "DevToken",
        token,
        "transfer",
        (to_checksum_address(to), amount),
        _params(sender, gas=gas),
        must_succeed=False,
    )


async def token_transfer_from(
    rpc_url: str,
    token: str,
    spender: str,
    owner: str,
    to: str,
    amount: int,
    *,
    gas: int | None = None,
) -> str:
    """``token.transferFrom(owner, to, amount)`` sent by ``spender``; the txid."""
    return await _call(
        rpc_url,
        "DevToken",
        token,
        "transferFrom",
        (to_checksum_address(owner), to_checksum_address(to), amount),
        _params(spender, gas=gas),
        must_succeed=False,
    )


async def token_approve(rpc_url: str, token: str, owner: str, spender: str, amount: int) -> str:
    """``token.approve(spender, amount)`` from ``owner``; raises DevnetTxError on failure."""
    return await _call(
        rpc_url,
        "DevToken",
        token,
        "approve",
        (to_checksum_address(spender), amount),
        _params(owner),
        must_succeed=True,
    )


async def mint(rpc_url: str, token: str, to: str, amount: int, *, sender: str | None = None) -> str:
    """``token.mint(to, amount)`` by the token's owner (the deployer)."""
    return await _call(
        rpc_url,
        "DevToken",
        token,
        "mint",
        (to_checksum_address(to), amount),
        _params(sender or DEFAULT_SENDER),
        must_succeed=True,
    )


async def set_fail_mode(rpc_url: str, token: str, mode: int, *, sender: str | None = None) -> str:
    """Switch a DevToken: 0 normal, 1 transfers return false silently, 2 transfers revert."""
    return await _call(
        rpc_url,
        "DevToken",
        token,
        "setFailMode",
        (mode,),
        _params(sender or DEFAULT_SENDER),
        must_succeed=True,
    )


async def token_balance(rpc_url: str, token: str, holder: str) -> int:
    """``token.balanceOf(holder)`` in base units."""
    async with _web3(rpc_url) as w3:
        contract = w3.eth.contract(
            address=to_checksum_address(token), abi=load_artifact("DevToken")["abi"]
        )
        return int(await contract.functions.balanceOf(to_checksum_address(holder)).call())


async def forward_eth(
    rpc_url: str,
    forwarder: str,
    sender: str,
    to: str,
    wei: int,
    *,
    then_revert: bool = False,
    gas: int | None = None,
) -> str:
    """Send ``wei`` through the Forwarder to ``to`` as an internal transfer; the txid.

    ``then_revert=True`` calls forwardThenRevert: the transaction fails and nothing arrives
    (gas is then fixed at 200,000 unless given, since estimation would refuse it).
    """
    function = "forwardThenRevert" if then_revert else "forward"
    if then_revert and gas is None:
        gas = 200_000
    return await _call(
        rpc_url,
        "Forwarder",
        forwarder,
        function,
        (to_checksum_address(to),),
        _params(sender, value=wei, gas=gas),
        must_succeed=not then_revert,
    )


async def forward_both(rpc_url: str, forwarder: str, sender: str, a: str, b: str, wei: int) -> str:
    """Split ``wei`` through the Forwarder: ``wei // 2`` to ``a``, the rest to ``b``; the txid."""
    return await _call(
        rpc_url,
        "Forwarder",
        forwarder,
        "forwardBoth",
        (to_checksum_address(a), to_checksum_address(b)),
        _params(sender, value=wei),
        must_succeed=True,
    )


async def deploy_payout(rpc_url: str, *, sender: str | None = None) -> str:
    """Deploy a Payout (one transaction paying several recipients of a token)."""
    return await deploy_contract(rpc_url, "Payout", sender=sender)


async def pay_out(
    rpc_url: str, payout: str, token: str, sender: str, payments: list[tuple[str, int]]
) -> str:
    """``payout.pay(token, recipients, amounts)``: one Transfer log per payment; the txid."""
    return await _call(
        rpc_url,
        "Payout",
        payout,
        "pay",
        (
            to_checksum_address(token),
            [to_checksum_address(to) for to, _ in payments],
            [amount for _, amount in payments],
        ),
        _params(sender),
        must_succeed=True,
    )


async def set_payout_reversed(
    rpc_url: str, payout: str, sender: str, reversed_: bool, *, wait: bool = True
) -> str:
    """``payout.setReversed(reversed_)``; with ``wait=False`` it is only sent (automine off)."""
    if wait:
        return await _call(
            rpc_url, "Payout", payout, "setReversed", (reversed_,), _params(sender),
            must_succeed=True,
        )  # fmt: skip
    async with _web3(rpc_url) as w3:
        contract = w3.eth.contract(
            address=to_checksum_address(payout), abi=load_artifact("Payout")["abi"]
        )
        params = _params(sender, gas=100_000)
        # A high tip puts it before the other transactions of the block being assembled.
        params["maxPriorityFeePerGas"] = Wei(50 * 10**9)
        params["maxFeePerGas"] = Wei(100 * 10**9)
        tx_hash = await contract.functions.setReversed(reversed_).transact(params)
    return "0x" + bytes(tx_hash).hex()


async def send_eth(rpc_url: str, sender: str, to: str, wei: int) -> str:
    """A plain ETH transfer from an unlocked anvil account; the txid once mined."""
    async with _web3(rpc_url) as w3:
        params = _params(sender, value=wei)
        params["to"] = to_checksum_address(to)
        tx_hash = await w3.eth.send_transaction(params)
        txid, status = await _mined(w3, tx_hash)
    if status != 1:
        raise DevnetTxError(f"ETH transfer failed in {txid}")
    return txid


async def mine(rpc_url: str, n: int = 1) -> None:
    """Mine ``n`` empty blocks (anvil_mine)."""
    async with _web3(rpc_url) as w3:
        response = await w3.provider.make_request(RPCEndpoint("anvil_mine"), [hex(n)])
    if response.get("error"):
        raise DevnetTxError(f"anvil_mine failed: {response['error']}")
