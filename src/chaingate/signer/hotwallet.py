"""The Bitcoin hot wallet in the signer: a BIP84 account whose private key only the signer holds.

The account's extended private key is split where BIP32 allows it: its 32-byte private key
lives in the signer's keystore (a keystore v3 file like every other hot key, scrypt-encrypted;
``chaingate signer keystore import``), and its chain code is public, inside the account xpub the
registry names (``hot_xpub``), which the gateway also uses to know the wallet's addresses. The
signer pairs them only after checking that the keystore's key IS the xpub's public key, so a
keystore and a registry that disagree stop the signer at start, not at the first batch.

Children are derived here (BIP32 CKDpriv, non-hardened: receive chain 0, change chain 1), never
outside the signer.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from functools import lru_cache

from coincurve import PrivateKey

from chaingate.chains.bitcoin.addresses import hash160, p2wpkh_script
from chaingate.chains.evm.addresses import address_from_public_key
from chaingate.chains.hdkeys import INTERNAL_CHAIN, account_chain_code
from chaingate.domain import Network
from chaingate.errors import KeystoreError
from chaingate.signer.keystore import KeyRing

_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _ckd_priv(secret: bytes, chain_code: bytes, index: int) -> tuple[bytes, bytes]:
    """BIP32 non-hardened private child: (secret, chain code)."""
    public = PrivateKey(secret).public_key.format(compressed=True)
    digest = hmac.new(chain_code, public + index.to_bytes(4, "big"), hashlib.sha512).digest()
    tweak = int.from_bytes(digest[:32], "big")
    child = (tweak + int.from_bytes(secret, "big")) % _ORDER
    if tweak >= _ORDER or child == 0:  # probability below 2^-127; BIP32 says: skip the index
        raise KeystoreError(f"BIP32 child {index} is invalid; use the next index")
    return child.to_bytes(32, "big"), digest[32:]


@dataclass(frozen=True)
class HotWallet:
    """One network's hot wallet account: derives the key of any (chain, index) below it."""

    network: str
    chain_code: bytes
    secret: bytes = field(repr=False)

    def key(self, chain: int, index: int) -> bytes:
        return _child(self.secret, self.chain_code, chain, index)

    def script(self, chain: int, index: int) -> bytes:
        public = PrivateKey(self.key(chain, index)).public_key.format(compressed=True)
        return p2wpkh_script(hash160(public))

    def change_script(self, index: int) -> bytes:
        return self.script(INTERNAL_CHAIN, index)


@lru_cache(maxsize=4096)
def _child(secret: bytes, chain_code: bytes, chain: int, index: int) -> bytes:
    branch, branch_code = _ckd_priv(secret, chain_code, chain)
    return _ckd_priv(branch, branch_code, index)[0]


def hot_wallet(network: Network, keys: KeyRing) -> HotWallet:
    """The network's hot wallet from its registry xpub and the matching keystore key."""
    if not network.hot_xpub:
        raise KeystoreError(f"{network.name}: no hot_xpub in the registry")
    chain_code, public = account_chain_code(network.hot_xpub)
    # keys are filed by the (EVM) address of their public key
    key = keys.key_for(address_from_public_key(public))
    if PrivateKey(key.secret).public_key.format(compressed=True) != public:
        raise KeystoreError(f"{network.name}: the keystore key is not the hot_xpub's key")
    return HotWallet(network=network.name, chain_code=chain_code, secret=key.secret)
