"""AddressHistory for Bitcoin networks: unspent outputs to the address's script.

``scantxoutset`` reads the node's UTXO set by script (never by the node's address strings:
litecoind shows rltc1 where we show bcrt1). It sees coins still there; an address that was paid
and fully swept leaves no UTXO, so on Bitcoin the guard catches unswept reuse only. Set the
start index explicitly when a previous deployment swept its deposits (docs/runbook.md)."""

from __future__ import annotations

from collections.abc import Sequence

from chaingate.chains.base import DerivedAddress, RpcClient
from chaingate.domain import Network
from chaingate.errors import ChainDataError


async def addresses_with_history(
    network: Network, rpc: RpcClient, addresses: Sequence[DerivedAddress]
) -> list[int]:
    by_script = {d.match_key.lower(): d.index for d in addresses}
    if not by_script:
        return []
    descriptors = [f"raw({script})" for script in by_script]
    # Not idempotent in the pool's sense (a second scan while one runs is refused), but a
    # read: sending it again after a timeout is harmless.
    reply = await rpc.request("scantxoutset", ["start", descriptors])
    if not isinstance(reply, dict) or not isinstance(reply.get("unspents"), list):
        raise ChainDataError(f"{network.name}: scantxoutset answered without 'unspents'")
    used: set[int] = set()
    for unspent in reply["unspents"]:
        script = unspent.get("scriptPubKey") if isinstance(unspent, dict) else None
        if not isinstance(script, str):
            raise ChainDataError(f"{network.name}: scantxoutset unspent without scriptPubKey")
        if script.lower() in by_script:
            used.add(by_script[script.lower()])
    return sorted(used)
