"""The Bitcoin hot wallet: the signer's keystore key paired with the registry's account xpub."""

from __future__ import annotations

import dataclasses

import pytest
from bitcoinlib.keys import HDKey
from bitcoinlib.mnemonic import Mnemonic

from chaingate.chains.bitcoin.addresses import hash160, p2wpkh_script
from chaingate.chains.hdkeys import child_public_key
from chaingate.devnet.chains import BITCOIN_HOT_KEY
from chaingate.errors import KeystoreError
from chaingate.signer.hotwallet import hot_wallet
from chaingate.signer.keystore import KeyRing, hot_key
from harness import devnet_network

DEVNET_HOT_KEY = bytes.fromhex(BITCOIN_HOT_KEY)
BTC = "bitcoin-devnet"
MNEMONIC = "test test test test test test test test test test test junk"


def devnet_hot_account(account: int) -> tuple[str, bytes]:
    """(xpub, private key) of m/84'/1'/<account>' of the devnet mnemonic: a hot wallet of its
    own per test, so coins other tests left on the shared litecoind are never this one's."""
    seed = Mnemonic().to_seed(MNEMONIC)
    key = HDKey.from_seed(seed, network="testnet", witness_type="segwit").subkey_for_path(
        f"m/84'/1'/{account}'"
    )
    return str(key.wif_public()), bytes.fromhex(key.private_hex)


def test_the_devnet_hot_wallet_derives_what_bip32_derives_from_the_mnemonic() -> None:
    network = devnet_network(BTC, "http://127.0.0.1:1")
    assert network.hot_xpub and network.hot_xpub != network.xpub
    assert devnet_hot_account(1) == (network.hot_xpub, DEVNET_HOT_KEY)
    wallet = hot_wallet(network, KeyRing([hot_key(DEVNET_HOT_KEY)]))
    seed = Mnemonic().to_seed(MNEMONIC)
    account = HDKey.from_seed(seed, network="testnet", witness_type="segwit").subkey_for_path(
        "m/84'/1'/1'"
    )
    for chain, index in ((0, 0), (0, 7), (1, 0), (1, 3)):
        assert (
            wallet.key(chain, index).hex()
            == account.child_private(chain).child_private(index).private_hex
        )
        # and the gateway, from the xpub alone, knows the same addresses
        public = child_public_key(network.hot_xpub, chain, index)
        assert wallet.script(chain, index) == p2wpkh_script(hash160(public))
    assert DEVNET_HOT_KEY.hex() not in repr(wallet) and str(DEVNET_HOT_KEY) not in repr(wallet)


def test_a_keystore_key_that_is_not_the_xpubs_is_refused() -> None:
    network = devnet_network(BTC, "http://127.0.0.1:1")
    with pytest.raises(KeystoreError):
        hot_wallet(network, KeyRing([hot_key(b"\x05" * 32)]))
    with pytest.raises(KeystoreError, match="no hot_xpub"):
        hot_wallet(dataclasses.replace(network, hot_xpub=None), KeyRing([hot_key(DEVNET_HOT_KEY)]))
