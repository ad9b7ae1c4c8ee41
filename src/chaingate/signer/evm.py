"""EVM signing: a type-2 transaction dict (``chains/evm/txbuilder.py``) signed with a hot key.

eth-account signs through eth-keys, which uses libsecp256k1 (coincurve) when it is installed:
about five times the pure-Python rate. The signature is checked by recovering the sender from
the signed bytes before they are stored, so a key mix-up can never reach the chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account

from chaingate.errors import SignerError
from chaingate.signer.keystore import HotKey


@dataclass(frozen=True, slots=True)
class SignedEvmTx:
    """The signed bytes as they will be broadcast (and rebroadcast), and their hash."""

    raw: bytes
    txid: str  # 0x-prefixed lowercase hex of keccak256(raw)
    sender: str
    nonce: int


def sign_evm(tx: dict[str, Any], key: HotKey) -> SignedEvmTx:
    signed = Account.sign_transaction(tx, key.secret)
    raw = bytes(signed.raw_transaction)
    if Account.recover_transaction(raw) != key.address:
        raise SignerError("the signed transaction does not recover to the hot address")
    return SignedEvmTx(
        raw=raw, txid="0x" + bytes(signed.hash).hex(), sender=key.address, nonce=tx["nonce"]
    )
