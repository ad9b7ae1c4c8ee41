"""TRON signing: the raw_data bytes of ``chains/tron/txbuilder.py`` signed with a hot key.

The txID is recomputed here as sha256 of the very bytes that are signed (java-tron does the same
and checks the signature over it), never taken from anyone. The signature is a 65-byte
recoverable secp256k1 signature over the txID; before the bytes are stored the owner is read
back from them (protobuf reader) and the signer recovered from the signature, and both must be
the hot address, so a key mix-up or a builder bug can never reach the chain.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from coincurve import PrivateKey, PublicKey

from chaingate.chains.tron.addresses import raw_from_public_point, to_base58
from chaingate.chains.tron.proto import decode_raw_data
from chaingate.errors import SignerError
from chaingate.signer.keystore import HotKey, tron_address


@dataclass(frozen=True, slots=True)
class SignedTronTx:
    raw_bytes: bytes  # Transaction.raw as signed; broadcast (and rebroadcast) as is
    txid: str  # sha256(raw_bytes), lowercase hex, no 0x
    signature: str  # 65 bytes hex (r || s || recovery id)
    sender: str  # T-address


def sign_tron(raw_bytes: bytes, key: HotKey) -> SignedTronTx:
    sender = tron_address(key.secret)
    contract = decode_raw_data(raw_bytes)
    if contract is None or to_base58(contract.owner) != sender:
        raise SignerError("the transaction's owner is not the hot address that signs it")
    digest = hashlib.sha256(raw_bytes).digest()
    signature = PrivateKey(key.secret).sign_recoverable(digest, hasher=None)
    public = PublicKey.from_signature_and_message(signature, digest, hasher=None)
    if to_base58(raw_from_public_point(public.format(compressed=False)[1:])) != sender:
        raise SignerError("the signature does not recover to the hot address")
    return SignedTronTx(raw_bytes, digest.hex(), signature.hex(), sender)
