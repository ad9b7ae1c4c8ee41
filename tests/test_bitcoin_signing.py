"""BIP143 digests and P2WPKH signing, pinned by the test vectors of BIP 143 itself."""

from __future__ import annotations

import pytest
from coincurve import PrivateKey, PublicKey

from chaingate.chains.bitcoin.addresses import hash160, p2wpkh_script
from chaingate.chains.bitcoin.coinselect import Coin
from chaingate.chains.bitcoin.rawtx import decode_tx
from chaingate.chains.bitcoin.txbuilder import (
    BatchTx,
    SighashCache,
    TxIn,
    TxOut,
    UnsignedTx,
    build_batch,
    p2wpkh_script_code,
)
from chaingate.errors import SignerError
from chaingate.signer.bitcoin import sign_p2wpkh

# bip-0143.mediawiki, "Native P2WPKH"
NATIVE_UNSIGNED = bytes.fromhex(
    "0100000002fff7f7881a8099afa6940d42d1e7f6362bec38171ea3edf433541db4e4ad969f0000000000eeffffff"
    "ef51e1b804cc89d182d279655c3aa89e815b1b309fe287d9b2b55d57b90ec68a0100000000ffffffff02202cb206"
    "000000001976a9148280b37df378db99f66f85c95a783a76ac7a6d5988ac9093510d000000001976a9143bde42db"
    "ee7e4dbe6a21b2d50ce2f0167faa815988ac11000000"
)
NATIVE_TX = UnsignedTx(
    inputs=(
        TxIn("9f96ade4b41d5433f4eda31e1738ec2b36f6e7d1420d94a6af99801a88f7f7ff", 0, 0xFFFFFFEE),
        TxIn("8ac60eb9575db5b2d987e29f301b5b819ea83a5c6579d282d189cc04b8e151ef", 1, 0xFFFFFFFF),
    ),
    outputs=(
        TxOut(112340000, bytes.fromhex("76a9148280b37df378db99f66f85c95a783a76ac7a6d5988ac")),
        TxOut(223450000, bytes.fromhex("76a9143bde42dbee7e4dbe6a21b2d50ce2f0167faa815988ac")),
    ),
    version=1,
    locktime=17,
)
NATIVE_KEY = bytes.fromhex("619c335025c7f4012e556c2a58b2506e30b8511b53ade95ea316fd8c3286feb9")
NATIVE_SIGHASH = "c37af31116d1b27caf68aae9e3ac82f1477929014d5b917657d0eb49478cb670"
NATIVE_SIGNATURE = bytes.fromhex(
    "304402203609e17b84f6a7d30c80bfa610b5b4542f32a8a0d5447a12fb1366d7f01cc44a0220573a954c45183315"
    "61406f90300e8f3358f51928d43c212a8caed02de67eebee"
)


def test_serialization_matches_the_bip_unsigned_transaction() -> None:
    assert NATIVE_TX.serialize() == NATIVE_UNSIGNED


def test_native_p2wpkh_sighash_matches_bip143() -> None:
    cache = SighashCache(NATIVE_TX)
    assert cache.hash_prevouts.hex() == (
        "96b827c8483d4e9b96712b6713a7b68d6e8003a781feba36c31143470b4efd37"
    )
    assert cache.hash_sequence.hex() == (
        "52b0a642eea2fb7ae638c36f6252b6750293dbe574a806984b8e4d8548339a3b"
    )
    assert cache.hash_outputs.hex() == (
        "863ef3e1a92afbfdb97f31ad0fc7683ee943e9abcf2501590ff8f6551f47e5e5"
    )
    public = PrivateKey(NATIVE_KEY).public_key.format()
    assert public.hex() == "025476c2e83188368da1ff3e292e7acafcdb3566bb0ad253f62fc70f07aeee6357"
    digest = cache.sighash(1, p2wpkh_script_code(hash160(public)), 600_000_000)
    assert digest.hex() == NATIVE_SIGHASH
    # the BIP's own signature verifies against our digest
    assert PublicKey(public).verify(NATIVE_SIGNATURE, digest, hasher=None)


def test_p2sh_p2wpkh_sighash_matches_bip143() -> None:
    tx = UnsignedTx(
        inputs=(
            TxIn("77541aeb3c4dac9260b68f74f44c973081a9d4cb2ebe8038b2d70faa201b6bdb", 1, 0xFFFFFFFE),
        ),
        outputs=(
            TxOut(199996600, bytes.fromhex("76a914a457b684d7f0d539a46a45bbc043f35b59d0d96388ac")),
            TxOut(800000000, bytes.fromhex("76a914fd270b1ee6abcaea97fea7ad0402e8bd8ad6d77c88ac")),
        ),
        version=1,
        locktime=1170,
    )
    code = p2wpkh_script_code(bytes.fromhex("79091972186c449eb1ded22b78e40d009bdf0089"))
    digest = SighashCache(tx).sighash(0, code, 1_000_000_000)
    assert digest.hex() == "64f3b0f4dd2bb3aa1ce8566d220cc74dda9df97d8490cc81d89d735c92e59fb6"


def _coin(secret: bytes, amount: int, vout: int = 0) -> Coin:
    public = PrivateKey(secret).public_key.format()
    return Coin(
        txid="11" * 32,
        vout=vout,
        amount=amount,
        script=p2wpkh_script(hash160(public)),
        chain=0,
        index=vout,
        confirmed=True,
    )


def test_signed_batch_carries_verifiable_witnesses_and_the_committed_txid() -> None:
    secrets = {0: b"\x01" * 32, 1: b"\x02" * 32}
    coins = [_coin(secrets[0], 60_000, 0), _coin(secrets[1], 70_000, 1)]
    batch = build_batch(
        [TxOut(100_000, bytes.fromhex("0014" + "33" * 20))],
        coins,
        change_script=bytes.fromhex("0014" + "44" * 20),
        fee_rate=2_000,
        fee_cap=10_000,
    )
    signed = sign_p2wpkh(batch, lambda chain, index: secrets[index])
    decoded = decode_tx(signed.raw)
    assert decoded.txid == signed.txid == batch.tx.txid()
    assert [o.sats for o in decoded.outputs] == [o.amount for o in batch.tx.outputs]
    # the fee was paid for at least the size the transaction really has
    assert signed.vsize <= batch.vsize
    assert batch.fee >= signed.vsize * 2


def test_a_key_that_does_not_own_the_coin_is_refused() -> None:
    coin = _coin(b"\x01" * 32, 60_000)
    batch = build_batch(
        [TxOut(50_000, bytes.fromhex("0014" + "33" * 20))],
        [coin],
        change_script=bytes.fromhex("0014" + "44" * 20),
        fee_rate=1_000,
        fee_cap=10_000,
    )
    assert isinstance(batch, BatchTx)
    with pytest.raises(SignerError, match="does not own"):
        sign_p2wpkh(batch, lambda chain, index: b"\x09" * 32)
