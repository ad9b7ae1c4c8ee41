"""TRON devnet: an in-memory java-tron HTTP subset for development and tests.

Run: ``python -m chaingate.devnet.tron_node --host 127.0.0.1 --port N --data-dir DIR
[--auto-mine SECONDS] [--solidify-lag BLOCKS]``; ready when ``POST /wallet/getnowblock``
answers 200. Blocks are produced on ``POST /devnet/mine`` or on the --auto-mine timer, never on
broadcast.

Genesis funds these well-known keys (devnet only, never use them anywhere else) with
``GENESIS_BALANCE_SUN`` each; ``GENESIS_KEYS[i]`` is ``sha256("chaingate tron devnet key <i>")``:

    0  TXLAuuxVpPeogPYhMuycztciHebqviKZEh
       key ce73dd91e031239696403ea9136443a8e96e165732795c90740a6fc754619e2e
    1  TSS11LrPTSATzWBfyZfDhvsESKMTVbG7di
       key 786e834a5e98f1a0fad8aac8ca5ea24f7621488eaa5d17a11545a96807282413
    2  TXo5psS4i3SFr3do4pFZCoLjWmnYu4SEYy
       key 53918af9bde12d33f8a596d13e7cc8d0461555dc4ad1224ca7010cbd37f89724
    3  THUrBFp6MYWEMb2VahN85LR5byV7Dinixr
       key a11729a6cb66e51d656abd616cc8dae946396f457f0265908182aaa3242388d5

``genesis_accounts()`` gives the same mapping; the server prints the addresses on start.

Controls (POST, JSON): /devnet/mine {count}; /devnet/fork {depth}; /devnet/fail-next
{mode: REVERT|OUT_OF_ENERGY}; /devnet/fund {address, amount_sun}; /devnet/deploy-trc20 {symbol,
decimals, owner, supply} -> {contract}; /devnet/issue-trc10 {name, owner, supply} -> {token_id};
/devnet/solidify-lag {blocks}; /devnet/resources {energy_fee, transaction_fee, free_net_limit,
create_account_fee, create_new_account_fee, max_fee_limit, extra_energy} (any subset) -> all of
them. ``extra_energy`` is energy a TRC-20 transfer really uses above what the dry run
(``triggerconstantcontract``) reports, so a fee_limit sized from the dry run can fall short.

Costs (costs.py): bandwidth (600 free bytes per account a day, then 1000 sun a byte), energy at
getEnergyFee (420 sun), 1.1 TRX to activate an account with a TRX transfer, fee_limit enforced
(OUT_OF_ENERGY burns the whole limit), expiration and TaPoS checked at broadcast, and a pending tx
whose expiration passes is never mined.
"""

from __future__ import annotations

import hashlib

GENESIS_BALANCE_SUN = 1_000_000 * 1_000_000  # one million TRX
GENESIS_KEYS: tuple[str, ...] = tuple(
    hashlib.sha256(f"chaingate tron devnet key {i}".encode()).hexdigest() for i in range(4)
)


def genesis_accounts() -> dict[str, bytes]:
    """Private key hex -> 21-byte address of every genesis-funded key."""
    from coincurve import PrivateKey

    from chaingate.chains.tron.addresses import raw_from_public_point

    out = {}
    for key in GENESIS_KEYS:
        point = PrivateKey(bytes.fromhex(key)).public_key.format(compressed=False)[1:]
        out[key] = raw_from_public_point(point)
    return out
