"""BIP32 public derivation shared by every chain family.

The registry holds the *account* extended public key of each network (m/84'/0'/0' for Bitcoin,
m/44'/60'/0' for EVM, m/44'/195'/0' for TRON); deposit address ``i`` is its child ``0/i``
(external chain, non-hardened), so no private key is ever needed here.
"""

from __future__ import annotations

from functools import lru_cache

from bitcoinlib.keys import BKeyError, HDKey

from chaingate.errors import ConfigError

EXTERNAL_CHAIN = 0
INTERNAL_CHAIN = 1  # change addresses of a hot wallet


@lru_cache(maxsize=64)
def _account(xpub: str) -> HDKey:
    try:
        key = HDKey(xpub)
    except (BKeyError, ValueError, TypeError) as exc:
        raise ConfigError("extended public key is not valid BIP32 (xpub/zpub/tpub/vpub)") from exc
    if key.is_private:
        # An xprv in a watcher's configuration is a key leak, not a convenience.
        raise ConfigError("an extended PRIVATE key was configured where an xpub belongs")
    return key


@lru_cache(maxsize=128)
def _chain(xpub: str, chain: int) -> HDKey:
    return _account(xpub).child_public(chain)


def account_chain_code(xpub: str) -> tuple[bytes, bytes]:
    """(chain code, compressed public key) of an account xpub: what, with the account's
    private key, makes its extended private key (the signer pairs them)."""
    key = _account(xpub)
    return bytes(key.chain), bytes.fromhex(key.public_hex)


def child_public_key(xpub: str, chain: int, index: int) -> bytes:
    """Compressed public key of ``chain/index`` below an account xpub (0 receive, 1 change)."""
    if chain not in (EXTERNAL_CHAIN, INTERNAL_CHAIN) or not 0 <= index < 2**31:
        raise ValueError(f"derivation path out of range: {chain}/{index}")
    return bytes.fromhex(_chain(xpub, chain).child_public(index).public_hex)


def _external_chain(xpub: str) -> HDKey:
    return _chain(xpub, EXTERNAL_CHAIN)


def validate_xpub(xpub: str) -> None:
    """Raise ConfigError (without echoing the key) unless ``xpub`` is a usable public key."""
    _external_chain(xpub)


def deposit_public_key(xpub: str, index: int) -> bytes:
    """Compressed SEC1 public key (33 bytes) of deposit address ``index``."""
    if not 0 <= index < 2**31:
        raise ValueError(f"derivation index out of range: {index}")
    child = _external_chain(xpub).child_public(index)
    return bytes.fromhex(child.public_hex)


def uncompressed_point(compressed: bytes) -> bytes:
    """64-byte X||Y of a compressed public key (EVM and TRON hash this)."""
    from coincurve import PublicKey

    return PublicKey(compressed).format(compressed=False)[1:]
