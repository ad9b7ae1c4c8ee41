"""AddressHistory for EVM networks: a nonce, an ETH balance or a listed token balance.

A deposit address that was paid and swept shows a nonce; one that was paid and not swept shows
a balance. What it cannot show is a payment swept by a contract wallet that never sent a
transaction from the address (not how chaingate's addresses are swept)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chaingate.chains.base import DerivedAddress, RpcClient
from chaingate.chains.evm.hexdata import hex_int
from chaingate.domain import AssetStandard, Network
from chaingate.errors import ChainDataError

_BALANCE_OF = "0x70a08231"  # balanceOf(address)


def _calls(network: Network, key: str) -> list[tuple[str, list[Any]]]:
    calls: list[tuple[str, list[Any]]] = [
        ("eth_getTransactionCount", [key, "latest"]),
        ("eth_getBalance", [key, "latest"]),
    ]
    for asset in network.assets:
        if asset.contract is not None and asset.standard is AssetStandard.ERC20:
            data = _BALANCE_OF + key.removeprefix("0x").rjust(64, "0")
            calls.append(("eth_call", [{"to": asset.contract, "data": data}, "latest"]))
    return calls


def _value(method: str, raw: object, what: str) -> int:
    if method != "eth_call":
        return hex_int(raw, what)
    # A call answers raw bytes ("0x" when no contract is deployed there: nothing held).
    if not isinstance(raw, str) or not raw.startswith("0x"):
        raise ChainDataError(f"{what}: expected hex data")
    try:
        return int(raw[2:66] or "0", 16)
    except ValueError:
        raise ChainDataError(f"{what}: expected hex data") from None


async def addresses_with_history(
    network: Network, rpc: RpcClient, addresses: Sequence[DerivedAddress]
) -> list[int]:
    used: list[int] = []
    for derived in addresses:
        calls = _calls(network, derived.match_key)
        results = await rpc.batch(calls)
        values = [
            _value(method, raw, f"{network.name}: {method} of address #{derived.index}")
            for (method, _), raw in zip(calls, results, strict=True)
        ]
        if any(values):
            used.append(derived.index)
    return used
