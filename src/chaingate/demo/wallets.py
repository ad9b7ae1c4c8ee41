"""A fresh deposit wallet for every demo run.

The devnet's chains outlive a demo run, but each run starts on fresh databases. With the
registry's fixed devnet xpubs, a second run would find its first deposit addresses already paid
on chain, and the address-index guard (api/issuance.py) rightly refuses to hand them out again.
So each run derives its deposit addresses from a random account key of its own: only the public
halves leave this module, and the private ones are dropped (the demo never spends deposits).
"""

from __future__ import annotations

from bitcoinlib.keys import HDKey

# Account paths (hardened steps end in ') of SPEC section 5: BIP84 for Bitcoin (testnet coin type on the regtest devnet),
# m/44'/60' for EVM, m/44'/195' for TRON.
_ACCOUNTS = {
    "CHAINGATE_BITCOIN_DEVNET_XPUB": ("testnet", "segwit", "m/84'/1'/0'"),
    "CHAINGATE_ETHEREUM_DEVNET_XPUB": ("bitcoin", "legacy", "m/44'/60'/0'"),
    "CHAINGATE_TRON_DEVNET_XPUB": ("bitcoin", "legacy", "m/44'/195'/0'"),
}


def fresh_deposit_xpubs() -> dict[str, str]:
    """Environment entries with a new account xpub for each network that issues addresses."""
    out: dict[str, str] = {}
    for variable, (network, witness_type, path) in _ACCOUNTS.items():
        key = HDKey(network=network, witness_type=witness_type)
        for step in path.removeprefix("m/").split("/"):
            key = key.child_private(int(step.rstrip("'")), hardened=step.endswith("'"))
        out[variable] = key.wif_public()
    return out
