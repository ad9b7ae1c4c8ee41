"""A copy of the devnet registry (chains/devnet) with what one run changes: where watching
starts and which TRON account is the hot wallet.

chains/devnet gives the TRON devnet no hot wallet (a gateway there watches deposits only);
the demo and the end-to-end withdrawal tests name genesis key 0 (``TRON_HOT_ADDRESS``), whose
key the signer holds as a devnet key. They point ``CHAINGATE_CHAINS_DIR`` at the copy, so the
service and the signer process read the same registry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from chaingate.devnet.config import DevnetError
from chaingate.devnet.tron_node import GENESIS_KEYS
from chaingate.settings import PROJECT_ROOT

DEVNET_CHAINS = PROJECT_ROOT / "chains" / "devnet"
# genesis key 0 of the TRON devnet: a million TRX and the registry's USDT supply at genesis
TRON_HOT_KEY = GENESIS_KEYS[0]
TRON_HOT_ADDRESS = "TXLAuuxVpPeogPYhMuycztciHebqviKZEh"
# m/84'/1'/1'/0/0 of the devnet mnemonic: the key of bitcoin-devnet's hot_xpub
BITCOIN_HOT_KEY = "d6b5fd942e9ff4c0255733e9b2ada47f22cd858eccf34db10078a8e5a433b6c9"


def write_chains(
    out: Path,
    names: Iterable[str] | None = None,
    *,
    start_heights: Mapping[str, int] | None = None,
    hot_addresses: Mapping[str, str] | None = None,
) -> Path:
    """Write ``names`` (all of chains/devnet when None) to ``out``, each with its
    ``start_height`` and ``hot_address`` replaced where given; returns ``out``."""
    wanted = sorted(p.stem for p in DEVNET_CHAINS.glob("*.toml")) if names is None else names
    out.mkdir(parents=True, exist_ok=True)
    for name in wanted:
        text = (DEVNET_CHAINS / f"{name}.toml").read_text()
        height = (start_heights or {}).get(name)
        if height is not None:
            text = _replace_line(text, "start_height = 0", f"start_height = {height}")
        hot = (hot_addresses or {}).get(name)
        if hot is not None:
            if "\nhot_address = " in text:
                raise DevnetError(f"chains/devnet/{name}.toml already names a hot_address")
            text = _replace_line(text, "testnet = true", f'testnet = true\nhot_address = "{hot}"')
        (out / f"{name}.toml").write_text(text)
    return out


def _replace_line(text: str, line: str, new: str) -> str:
    if f"\n{line}\n" not in text:
        raise DevnetError(f"the devnet registry has no line {line!r} to replace")
    return text.replace(f"\n{line}\n", f"\n{new}\n", 1)
