"""Bitcoin addresses: bech32/bech32m vectors, BIP84 derivation, validation across networks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bitcoinlib.encoding import change_base

from chaingate.chains.bitcoin.addresses import BitcoinAddresses, base58check_decode
from chaingate.chains.bitcoin.bech32 import (
    Bech32Error,
    Encoding,
    bech32_decode,
    decode_segwit,
    encode_segwit,
)
from chaingate.domain import Asset, AssetStandard, Network, NetworkKind
from chaingate.errors import ConfigError, InvalidAddressError

DATA = Path(__file__).parent / "data" / "bitcoin"
VECTORS = json.loads((DATA / "bech32_vectors.json").read_text())

# BIP84 spec vector: mnemonic "abandon abandon ... about", account m/84'/0'/0'.
BIP84_ZPUB = (
    "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868R"
    "vUUkgDKf31mGDtKsAYz2oz2AGutZYs"
)
BIP84_FIRST_RECEIVE = "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"
BIP84_SECOND_RECEIVE = "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g"
# Same mnemonic, testnet account m/84'/1'/0' (vpub) and its tpub twin (same key bytes).
BIP84_VPUB = (
    "vpub5Y6cjg78GGuNLsaPhmYsiw4gYX3HoQiRBiSwDaBXKUafCt9bNwWQiitDk5VZ5BVxYnQdwoTyXSs2JHRP"
    "AgjAvtbBrf8ZhDYe2jWAqvZVnsc"
)
TESTNET_FIRST_RECEIVE = "tb1q6rz28mcfaxtmd6v789l9rrlrusdprr9pqcpvkl"


def network(hrp: str, xpub: str | None = None, name: str | None = None) -> Network:
    return Network(
        name=name or f"bitcoin-{hrp}",
        kind=NetworkKind.BITCOIN,
        confirmations=2,
        block_time=600,
        poll_interval=10,
        endpoints=(),
        assets=(Asset("BTC", 8, AssetStandard.NATIVE),),
        hrp=hrp,
        xpub=xpub,
    )


def reversion(extended_key: str, version: bytes) -> str:
    """The same BIP32 key serialized with other version bytes (vpub -> tpub)."""
    import hashlib

    payload = version + base58check_decode(extended_key)[4:]
    check = hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    return str(change_base(payload + check, 256, 58))


# --- bech32 / bech32m codec ------------------------------------------------------------------
@pytest.mark.parametrize("text", VECTORS["valid_bech32"])
def test_valid_bech32_checksums_decode_as_bech32(text: str) -> None:
    assert bech32_decode(text)[2] is Encoding.BECH32


@pytest.mark.parametrize("text", VECTORS["valid_bech32m"])
def test_valid_bech32m_checksums_decode_as_bech32m(text: str) -> None:
    assert bech32_decode(text)[2] is Encoding.BECH32M


@pytest.mark.parametrize("text", VECTORS["valid_bech32"] + VECTORS["valid_bech32m"])
def test_one_flipped_character_breaks_the_checksum(text: str) -> None:
    pos = text.rfind("1")
    flipped = text[: pos + 1] + chr(ord(text[pos + 1]) ^ 1) + text[pos + 2 :]
    with pytest.raises(Bech32Error):
        bech32_decode(flipped)


@pytest.mark.parametrize("text", VECTORS["invalid_bech32"] + VECTORS["invalid_bech32m"])
def test_invalid_strings_are_refused(text: str) -> None:
    with pytest.raises(Bech32Error):
        bech32_decode(text)


@pytest.mark.parametrize(("address", "script"), VECTORS["valid_address"])
def test_valid_segwit_addresses_give_their_script(address: str, script: str) -> None:
    hrp = address[:2].lower()
    codec = BitcoinAddresses(network(hrp))
    assert codec.match_key(address) == script
    assert codec.normalize(address) == address.lower()
    _, version, program = decode_segwit(address)
    assert encode_segwit(hrp, version, program) == address.lower()


@pytest.mark.parametrize("address", VECTORS["invalid_address"])
def test_invalid_segwit_addresses_are_refused(address: str) -> None:
    for hrp in ("bc", "tb"):
        with pytest.raises(InvalidAddressError):
            BitcoinAddresses(network(hrp)).normalize(address)


# --- BIP84 derivation --------------------------------------------------------------------------
def test_bip84_spec_vector_first_receive_addresses() -> None:
    codec = BitcoinAddresses(network("bc", BIP84_ZPUB))
    first = codec.derive(0)
    assert first.address == BIP84_FIRST_RECEIVE
    assert codec.derive(1).address == BIP84_SECOND_RECEIVE
    # Deposits are matched by scriptPubKey: OP_0 <20-byte key hash>.
    assert first.match_key == "0014c0cebcd6c3d3ca8c75dc5ec62ebe55330ef910e2"
    assert codec.match_key(first.address) == first.match_key


def test_vpub_and_tpub_of_one_key_give_the_same_testnet_addresses() -> None:
    tpub = reversion(BIP84_VPUB, bytes.fromhex("043587cf"))
    assert tpub.startswith("tpub")
    by_vpub = BitcoinAddresses(network("tb", BIP84_VPUB)).derive(0)
    by_tpub = BitcoinAddresses(network("tb", tpub)).derive(0)
    assert by_vpub == by_tpub
    assert by_vpub.address == TESTNET_FIRST_RECEIVE


def test_regtest_address_uses_the_regtest_hrp_with_the_same_script() -> None:
    regtest = BitcoinAddresses(network("bcrt", BIP84_VPUB)).derive(0)
    testnet = BitcoinAddresses(network("tb", BIP84_VPUB)).derive(0)
    assert regtest.address.startswith("bcrt1q")
    assert regtest.match_key == testnet.match_key


def test_xpub_form_derives_the_same_keys_as_zpub() -> None:
    xpub = reversion(BIP84_ZPUB, bytes.fromhex("0488b21e"))
    assert xpub.startswith("xpub")
    assert BitcoinAddresses(network("bc", xpub)).derive(0).address == BIP84_FIRST_RECEIVE


def test_derive_without_xpub_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        BitcoinAddresses(network("bc")).derive(0)


# --- validation across networks ---------------------------------------------------------------
MAINNET = BitcoinAddresses(network("bc", name="bitcoin-mainnet"))
TESTNET = BitcoinAddresses(network("tb", name="bitcoin-testnet"))


@pytest.mark.parametrize(
    ("address", "script"),
    [
        # Satoshi's genesis coinbase key as P2PKH, and the BIP16 example P2SH address.
        (
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
            "76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac",
        ),
        ("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", "a914b472a266d0bd89c13706a4132ccfb16f7c3b9fcb87"),
    ],
)
def test_mainnet_base58_addresses(address: str, script: str) -> None:
    assert MAINNET.normalize(address) == address
    assert MAINNET.match_key(address) == script


def test_testnet_base58_address_on_testnet() -> None:
    assert TESTNET.match_key("mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn").startswith("76a914")
    assert TESTNET.match_key("2MzQwSSnBHWHqSAqtTVQ6v47XtaisrJa1Vc").startswith("a914")


@pytest.mark.parametrize(
    ("codec", "address", "other"),
    [
        (MAINNET, "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx", "bitcoin-testnet"),
        (MAINNET, "bcrt1qs758ursh4q9z627kt3pp5yysm78ddny6txaqgw", "bitcoin-regtest"),
        (TESTNET, BIP84_FIRST_RECEIVE, "bitcoin-mainnet"),
        (MAINNET, "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn", "bitcoin-testnet"),
        (TESTNET, "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "bitcoin-mainnet"),
        (MAINNET, encode_segwit("ltc", 0, bytes(range(20))), "litecoin"),
        (MAINNET, encode_segwit("rltc", 0, bytes(range(20))), "litecoin"),
        (MAINNET, "LVg2kJoFNg45Nbpy53h7Fe1wKyeXVRhMH9", "litecoin"),
        (MAINNET, "MGxNPPB7eBoWPUaprtX9v9CXJZoD2465zN", "litecoin"),
        (MAINNET, "0xB62132e35a6c13ee1EE0f84dC5d40bad8d815206", "evm"),
        (MAINNET, "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t", "tron"),
    ],
)
def test_other_networks_addresses_are_refused_and_named(
    codec: BitcoinAddresses, address: str, other: str
) -> None:
    with pytest.raises(InvalidAddressError) as refused:
        codec.normalize(address)
    assert refused.value.other_network == other


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb",  # base58 checksum broken
        "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyv",  # bech32 checksum broken
    ],
)
def test_garbage_is_refused(text: str) -> None:
    with pytest.raises(InvalidAddressError):
        MAINNET.normalize(text)


def test_uppercase_bech32_normalizes_to_lowercase() -> None:
    assert MAINNET.normalize(BIP84_FIRST_RECEIVE.upper()) == BIP84_FIRST_RECEIVE
    assert MAINNET.normalize(f"  {BIP84_FIRST_RECEIVE}\n") == BIP84_FIRST_RECEIVE
