"""EVM deposit address derivation (known vector) and withdrawal-address validation."""

from __future__ import annotations

import warnings

import pytest
from bitcoinlib.keys import HDKey
from bitcoinlib.mnemonic import Mnemonic

from chaingate.chains.evm.addresses import EvmAddresses
from chaingate.domain import Asset, AssetStandard, Network, NetworkKind
from chaingate.errors import ConfigError, InvalidAddressError

# The well-known foundry/hardhat test mnemonic; anvil's default accounts 0..2 are its
# m/44'/60'/0'/0/{0,1,2} addresses.
MNEMONIC = "test test test test test test test test test test test junk"
ANVIL = (
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
)


def account_xpub(mnemonic: str) -> str:
    """m/44'/60'/0' account xpub, as an operator exports it from the wallet's seed."""
    seed = Mnemonic().to_seed(mnemonic)
    key = HDKey.from_seed(seed, witness_type="legacy")
    for index in (44, 60, 0):
        key = key.child_private(index, hardened=True)
    return str(key.public().wif_public())


def network(xpub: str | None) -> Network:
    return Network(
        name="ethereum-devnet",
        kind=NetworkKind.EVM,
        confirmations=2,
        block_time=1.0,
        poll_interval=1.0,
        endpoints=(),
        assets=(Asset("ETH", 18, AssetStandard.NATIVE),),
        chain_id=31337,
        xpub=xpub,
    )


@pytest.fixture(scope="module")
def codec() -> EvmAddresses:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return EvmAddresses(network(account_xpub(MNEMONIC)))


def test_derivation_matches_anvil_default_accounts(codec: EvmAddresses) -> None:
    derived = [codec.derive(i) for i in range(3)]
    assert [d.address for d in derived] == list(ANVIL)
    assert [d.match_key for d in derived] == [a.lower() for a in ANVIL]
    assert [d.index for d in derived] == [0, 1, 2]


def test_derivation_without_xpub_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        EvmAddresses(network(None)).derive(0)


@pytest.mark.parametrize(
    "text", [ANVIL[0], ANVIL[0].lower(), "0x" + ANVIL[0][2:].upper(), f"  {ANVIL[0]}\n"]
)
def test_checksummed_lower_and_upper_forms_are_accepted(codec: EvmAddresses, text: str) -> None:
    assert codec.normalize(text) == ANVIL[0]
    assert codec.match_key(text) == ANVIL[0].lower()


def test_mixed_case_with_a_wrong_checksum_is_refused(codec: EvmAddresses) -> None:
    typo = "0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # first letter's case flipped
    with pytest.raises(InvalidAddressError, match="checksum") as info:
        codec.normalize(typo)
    assert info.value.other_network is None


@pytest.mark.parametrize(
    ("text", "family"),
    [
        ("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t", "tron"),  # USDT TRC-20 contract address
        ("41a614f803b6fd780986a42c78ec9c7f77e6ded13c", "tron"),  # same, TRON hex form
        ("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", "bitcoin"),
        ("tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx", "bitcoin"),
        ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "bitcoin"),  # the genesis block address
        ("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", "bitcoin"),
        ("ltc1qg82tq7svd8gldk3vqhmzrwwgcc3gv0rg0xlvmm", "litecoin"),
        ("LaMT348PWRnrqeeWArpwQPbuanpXDZGEUz", "litecoin"),
        ("MGxNPPB7eBoWPUaprtX9v9CXJZoD2465zN", "litecoin"),
    ],
)
def test_addresses_of_other_networks_are_named(codec: EvmAddresses, text: str, family: str) -> None:
    with pytest.raises(InvalidAddressError) as info:
        codec.normalize(text)
    assert info.value.other_network == family
    assert family.capitalize() in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0x",
        "0x1234",
        ANVIL[0] + "00",
        "0xg39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        ANVIL[0][2:],
        "vitalik.eth",
    ],
)
def test_malformed_input_is_refused_without_a_network_guess(codec: EvmAddresses, text: str) -> None:
    with pytest.raises(InvalidAddressError) as info:
        codec.normalize(text)
    assert info.value.other_network is None
