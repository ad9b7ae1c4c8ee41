"""TRON addresses: BIP44 m/44'/195'/0'/0/i derivation and base58check validation.

A TRON address is 0x41 followed by the last 20 bytes of keccak256 of the uncompressed public key,
shown as base58check ("T..."). The base58 T-address is both the display form and the match key.
"""

from __future__ import annotations

import hashlib
import re

import base58
from eth_utils.crypto import keccak

from chaingate.chains.base import DerivedAddress
from chaingate.chains.hdkeys import deposit_public_key, uncompressed_point
from chaingate.domain import Network
from chaingate.errors import ConfigError, InvalidAddressError

ADDRESS_PREFIX = 0x41
_B58_VALUE = {c: i for i, c in enumerate(base58.BITCOIN_ALPHABET.decode())}
_HEX41 = re.compile(r"^41[0-9a-fA-F]{40}$")
_EVM = re.compile(r"^0x[0-9a-fA-F]{40}$")
_BECH32_BTC = re.compile(r"^(bc1|tb1|bcrt1)[02-9ac-hj-np-z]{8,87}$", re.IGNORECASE)
_BASE58_BTC = re.compile(r"^[13][1-9A-HJ-NP-Za-km-z]{25,34}$")


def _checksum(payload: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]


def raw_from_public_point(point64: bytes) -> bytes:
    """21-byte address (0x41 || keccak256(X||Y)[-20:]) of a 64-byte public point."""
    if len(point64) != 64:
        raise ValueError("public point must be 64 bytes (X||Y)")
    return bytes([ADDRESS_PREFIX]) + keccak(point64)[-20:]


_B58_ALPHABET = base58.BITCOIN_ALPHABET.decode()
_B58_PAIRS = [a + b for a in _B58_ALPHABET for b in _B58_ALPHABET]  # 58**2 two-digit strings


def to_base58(raw21: bytes) -> str:
    if len(raw21) != 21 or raw21[0] != ADDRESS_PREFIX:
        raise ValueError("TRON raw address must be 21 bytes starting with 0x41")
    # base58 two digits at a time (the base58 package divides once per digit): a scan renders
    # one per payment it finds. 0x41 leads, so there are no leading zero bytes to encode as "1".
    number = int.from_bytes(raw21 + _checksum(raw21), "big")
    pairs: list[str] = []
    while number:
        number, pair = divmod(number, 3364)
        pairs.append(_B58_PAIRS[pair])
    return "".join(reversed(pairs)).lstrip("1")


def from_base58(text: str) -> bytes:
    """The 21 raw bytes of a base58check T-address; ValueError when malformed."""
    try:
        decoded = base58.b58decode(text)
    except ValueError as exc:
        raise ValueError("not base58") from exc
    if len(decoded) != 25:
        raise ValueError("wrong length")
    raw, check = decoded[:21], decoded[21:]
    if _checksum(raw) != check:
        raise ValueError("bad checksum")
    if raw[0] != ADDRESS_PREFIX:
        raise ValueError("not a TRON mainnet address prefix")
    return raw


def hex_to_base58(hex41: str) -> str:
    """'41'-prefixed hex (as java-tron shows addresses) -> base58 T-address."""
    return to_base58(bytes.fromhex(hex41))


def evm_hex_to_base58(hex20: str) -> str:
    """20-byte hex without the 41 prefix (log addresses, ABI words) -> base58 T-address."""
    body = hex20[-40:]
    return to_base58(bytes([ADDRESS_PREFIX]) + bytes.fromhex(body))


def base58_to_hex(text: str) -> str:
    return from_base58(text).hex()


def any_to_raw(text: str) -> bytes:
    """Accept base58 T-address or 41-hex (the two forms java-tron accepts); ValueError else."""
    if _HEX41.match(text):
        return bytes.fromhex(text)
    return from_base58(text)


class TronAddresses:
    """AddressCodec of a TRON network."""

    def __init__(self, network: Network) -> None:
        self.network = network

    def derive(self, index: int) -> DerivedAddress:
        if not self.network.xpub:
            raise ConfigError(f"network {self.network.name} has no xpub configured")
        point = uncompressed_point(deposit_public_key(self.network.xpub, index))
        address = to_base58(raw_from_public_point(point))
        return DerivedAddress(index=index, address=address, match_key=address)

    def normalize(self, text: str) -> str:
        text = text.strip()
        if _HEX41.match(text):
            return hex_to_base58(text.lower())
        if _EVM.match(text):
            raise InvalidAddressError("an EVM (0x) address is not a TRON address", "evm")
        if _BECH32_BTC.match(text) or (_BASE58_BTC.match(text) and not text.startswith("T")):
            raise InvalidAddressError("a Bitcoin address is not a TRON address", "bitcoin")
        try:
            return to_base58(from_base58(text))
        except ValueError as exc:
            raise InvalidAddressError(f"not a valid TRON address: {exc}") from exc

    def match_key(self, address: str) -> str:
        return self.normalize(address)

    def raw_key(self, match_key: str) -> bytes:
        """The 21 bytes of a match key the store holds. Its checksum was checked when it was
        derived and stored, so only the base58 digits are read again: the base58 library's
        decode and the double SHA-256 would make a million keys a minute of a watcher's start."""
        number = 0
        try:
            for char in match_key:
                number = number * 58 + _B58_VALUE[char]
            raw = number.to_bytes(25, "big")[:21]
        except (KeyError, OverflowError) as exc:
            raise ValueError(f"not a TRON match key: {match_key!r:.50}") from exc
        if raw[0] != ADDRESS_PREFIX:
            raise ValueError(f"not a TRON match key: {match_key!r:.50}")
        return raw

    def min_output(self, address: str) -> int:
        return 1
