"""AddressHistory for TRON networks: an activated account or a listed TRC-20 balance.

An address that ever received TRX is an account (``/wallet/getaccount`` answers more than
``{}``), even after it was swept; a TRC-20 balance is read with a constant call of
``balanceOf``."""

from __future__ import annotations

from collections.abc import Sequence

from chaingate.chains.base import DerivedAddress, HttpClient
from chaingate.chains.tron.addresses import from_base58
from chaingate.domain import AssetStandard, Network
from chaingate.errors import ChainDataError


async def addresses_with_history(
    network: Network, http: HttpClient, addresses: Sequence[DerivedAddress]
) -> list[int]:
    tokens = [
        a.contract
        for a in network.assets
        if a.contract is not None and a.standard is AssetStandard.TRC20
    ]
    used: list[int] = []
    for derived in addresses:
        account = await http.post(
            "/wallet/getaccount", {"address": derived.address, "visible": True}
        )
        if not isinstance(account, dict):
            raise ChainDataError(f"{network.name}: getaccount answered {type(account).__name__}")
        if account:
            used.append(derived.index)
            continue
        for contract in tokens:
            if await _trc20_balance(network, http, contract, derived.address) > 0:
                used.append(derived.index)
                break
    return used


async def _trc20_balance(network: Network, http: HttpClient, contract: str, owner: str) -> int:
    parameter = from_base58(owner)[1:].hex().rjust(64, "0")
    reply = await http.post(
        "/wallet/triggerconstantcontract",
        {
            "owner_address": owner,
            "contract_address": contract,
            "function_selector": "balanceOf(address)",
            "parameter": parameter,
            "visible": True,
        },
    )
    try:
        (word,) = reply["constant_result"]
        return int(word or "0", 16)
    except (KeyError, TypeError, ValueError) as exc:
        raise ChainDataError(f"{network.name}: balanceOf on {contract} unreadable") from exc
