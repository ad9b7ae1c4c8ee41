"""EVM deposit addresses: derivation from the account xpub and validation of user input.

The same 0x address is valid on every EVM chain, so validation cannot tell Ethereum from BNB
Chain; it can and does refuse (with ``other_network`` set) the addresses of the other families
users paste by mistake: TRON (base58 ``T...`` or ``41``-prefixed hex), Bitcoin and Litecoin.
"""

from __future__ import annotations

import re

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chaingate.chains.base import DerivedAddress
from chaingate.chains.hdkeys import deposit_public_key, uncompressed_point
from chaingate.domain import Network
from chaingate.errors import ConfigError, InvalidAddressError

_HEX40 = re.compile(r"0[xX][0-9a-fA-F]{40}")
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_TRON_BASE58 = re.compile(rf"T[{_B58}]{{33}}")
_TRON_HEX = re.compile(r"41[0-9a-fA-F]{40}")
# Prefix -> family for the look-alikes a user may paste into an EVM withdrawal form.
_BECH32_PREFIXES = (
    ("bc1", "bitcoin"),
    ("tb1", "bitcoin"),
    ("bcrt1", "bitcoin"),
    ("ltc1", "litecoin"),
    ("tltc1", "litecoin"),
    ("rltc1", "litecoin"),
)
_BASE58_LEGACY = re.compile(rf"[13LMmn2Q][{_B58}]{{25,34}}")
_BASE58_FAMILY = {"1": "bitcoin", "3": "bitcoin", "m": "bitcoin", "n": "bitcoin", "2": "bitcoin"}


def address_bytes(text: str) -> bytes | None:
    """The 20 bytes of a 0x address as a node writes it (either case): what the watched set is
    probed with. None when ``text`` is no such address (nothing of ours, then)."""
    if len(text) != 42 or text[:2] not in ("0x", "0X"):
        return None
    try:
        raw = bytes.fromhex(text[2:])
    except ValueError:
        return None
    # 40 characters give 20 bytes only when all are hex digits (fromhex skips whitespace).
    return raw if len(raw) == 20 else None


def address_from_public_key(compressed: bytes) -> str:
    """EIP-55 address of a compressed secp256k1 key: last 20 bytes of keccak256(X||Y)."""
    return to_checksum_address(keccak(uncompressed_point(compressed))[-20:])


def other_family(text: str) -> str | None:
    """The address family ``text`` recognisably belongs to, when it is not EVM."""
    if _TRON_BASE58.fullmatch(text) or _TRON_HEX.fullmatch(text):
        return "tron"
    lowered = text.lower()
    for prefix, family in _BECH32_PREFIXES:
        if lowered.startswith(prefix) and len(text) > len(prefix) + 6:
            return family
    if _BASE58_LEGACY.fullmatch(text):
        return _BASE58_FAMILY.get(text[0], "litecoin")
    return None


class EvmAddresses:
    """AddressCodec of one EVM network (the account xpub comes from ``network.xpub``)."""

    def __init__(self, network: Network) -> None:
        self.network = network

    def derive(self, index: int) -> DerivedAddress:
        if self.network.xpub is None:
            raise ConfigError(f"network {self.network.name} has no xpub configured")
        address = address_from_public_key(deposit_public_key(self.network.xpub, index))
        return DerivedAddress(index=index, address=address, match_key=address.lower())

    def normalize(self, text: str) -> str:
        candidate = text.strip()
        if _HEX40.fullmatch(candidate):
            return self._checksummed(candidate)
        family = other_family(candidate)
        if family is not None:
            raise InvalidAddressError(
                f"this is a {family.capitalize()} address, not an address of "
                f"{self.network.name}; sending there would lose the funds",
                other_network=family,
            )
        if re.fullmatch(r"[0-9a-fA-F]{40}", candidate):
            raise InvalidAddressError("an EVM address must start with 0x")
        raise InvalidAddressError(
            f"not an address of {self.network.name}: expected 0x followed by 40 hex digits"
        )

    def match_key(self, address: str) -> str:
        return self.normalize(address).lower()

    def raw_key(self, match_key: str) -> bytes:
        # A stored key is canonical ("0x" and 40 lowercase hex digits); run once per key when
        # a watcher loads millions of them, so without address_bytes' second call.
        raw = bytes.fromhex(match_key[2:])  # ValueError when not hex
        if len(raw) != 20 or len(match_key) != 42 or not match_key.startswith("0x"):
            raise ValueError(f"not an EVM match key: {match_key!r:.50}")
        return raw

    def min_output(self, address: str) -> int:
        return 1

    @staticmethod
    def _checksummed(candidate: str) -> str:
        body = candidate[2:]
        checksummed = to_checksum_address("0x" + body.lower())
        # All-lower or all-upper carries no checksum (pre-EIP-55 form); mixed case must match,
        # since a mistyped mixed-case address is exactly what EIP-55 exists to catch.
        if body not in (body.lower(), body.upper()) and "0x" + body != checksummed:
            raise InvalidAddressError(
                "address checksum (EIP-55 mixed case) does not match: check it for typos"
            )
        return checksummed
