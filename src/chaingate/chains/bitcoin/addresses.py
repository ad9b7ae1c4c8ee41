"""Bitcoin deposit addresses: BIP84 P2WPKH derivation and validation of every address form.

Deposits are matched by scriptPubKey (hex), never by the address string a node prints: the
devnet's litecoind shows the same script as ``rltc1...`` where the gateway shows ``bcrt1...``.
"""

from __future__ import annotations

import hashlib
import re

from chaingate.chains.base import DerivedAddress
from chaingate.chains.bitcoin.bech32 import Bech32Error, decode_segwit, encode_segwit
from chaingate.chains.bitcoin.txbuilder import dust_threshold
from chaingate.chains.hdkeys import deposit_public_key
from chaingate.domain import Network
from chaingate.errors import ConfigError, InvalidAddressError

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}

# base58check version bytes: (P2PKH, P2SH)
MAINNET_VERSIONS = (0x00, 0x05)
TESTNET_VERSIONS = (0x6F, 0xC4)  # testnet, signet and regtest share them

# Whose address a bech32 prefix is, to tell the user where their address belongs.
_HRP_NETWORKS = {
    "bc": "bitcoin-mainnet",
    "tb": "bitcoin-testnet",
    "bcrt": "bitcoin-regtest",
    "ltc": "litecoin",
    "tltc": "litecoin",
    "rltc": "litecoin",
}
_LITECOIN_B58_VERSIONS = {0x30, 0x32, 0x3A}  # L..., M..., Q... (testnet P2SH)
_TRON_B58_VERSION = 0x41
_EVM_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")


def hash160(data: bytes) -> bytes:
    return hashlib.new("ripemd160", hashlib.sha256(data).digest()).digest()


def p2wpkh_script(pubkey_hash: bytes) -> bytes:
    return b"\x00\x14" + pubkey_hash


def witness_script(version: int, program: bytes) -> bytes:
    """scriptPubKey of a SegWit output: OP_0 / OP_1..OP_16, then a push of the program."""
    opcode = 0 if version == 0 else 0x50 + version
    return bytes([opcode, len(program)]) + program


def base58check_decode(text: str) -> bytes:
    """Payload (version byte + data) of a base58check string; ValueError if invalid."""
    if not text:
        raise ValueError("empty")
    number = 0
    for char in text:
        if char not in _B58_INDEX:
            raise ValueError("not base58")
        number = number * 58 + _B58_INDEX[char]
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    pad = len(text) - len(text.lstrip("1"))
    raw = b"\x00" * pad + body
    if len(raw) < 5:
        raise ValueError("too short")
    payload, checksum = raw[:-4], raw[-4:]
    if hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] != checksum:
        raise ValueError("checksum mismatch")
    return payload


class BitcoinAddresses:
    """AddressCodec of one Bitcoin network (hrp and version bytes from the registry)."""

    def __init__(self, network: Network) -> None:
        if not network.hrp:
            raise ConfigError(f"network {network.name} has no bech32 hrp")
        self.network = network
        self.hrp = network.hrp.lower()
        p2pkh, p2sh = MAINNET_VERSIONS if self.hrp == "bc" else TESTNET_VERSIONS
        self.p2pkh_versions = network.p2pkh_versions or (p2pkh,)
        self.p2sh_versions = network.p2sh_versions or (p2sh,)

    # --- derivation ---------------------------------------------------------------------
    def derive(self, index: int) -> DerivedAddress:
        if not self.network.xpub:
            raise ConfigError(f"network {self.network.name} has no xpub configured")
        program = hash160(deposit_public_key(self.network.xpub, index))
        return DerivedAddress(
            index=index,
            address=encode_segwit(self.hrp, 0, program),
            match_key=p2wpkh_script(program).hex(),
        )

    # --- validation ---------------------------------------------------------------------
    def normalize(self, text: str) -> str:
        address, _ = self._parse(text)
        return address

    def match_key(self, address: str) -> str:
        _, script = self._parse(address)
        return script.hex()

    def raw_key(self, match_key: str) -> bytes:
        return bytes.fromhex(match_key)

    def min_output(self, address: str) -> int:
        """The dust limit of the address's script type: a smaller output is not relayed."""
        _, script = self._parse(address)
        return dust_threshold(script)

    def _parse(self, text: str) -> tuple[str, bytes]:
        """(canonical address, scriptPubKey) or InvalidAddressError."""
        text = text.strip()
        if not text:
            raise InvalidAddressError("empty address")
        segwit = self._parse_segwit(text)
        if segwit is not None:
            return segwit
        legacy = self._parse_base58(text)
        if legacy is not None:
            return legacy
        if _EVM_RE.match(text):
            raise InvalidAddressError("an EVM (0x) address, not Bitcoin", other_network="evm")
        raise InvalidAddressError(f"not a {self.network.name} address")

    def _parse_segwit(self, text: str) -> tuple[str, bytes] | None:
        try:
            hrp, version, program = decode_segwit(text)
        except Bech32Error:
            return None
        if hrp != self.hrp:
            other = _HRP_NETWORKS.get(hrp)
            raise InvalidAddressError(
                f"address is for {other or 'another network'} (prefix {hrp}1), "
                f"not {self.network.name}",
                other_network=other,
            )
        return encode_segwit(self.hrp, version, program), witness_script(version, program)

    def _parse_base58(self, text: str) -> tuple[str, bytes] | None:
        try:
            payload = base58check_decode(text)
        except ValueError:
            return None
        version, body = payload[0], payload[1:]
        if len(body) == 20:
            if version in self.p2pkh_versions:
                return text, b"\x76\xa9\x14" + body + b"\x88\xac"
            if version in self.p2sh_versions:
                return text, b"\xa9\x14" + body + b"\x87"
            other = _base58_owner(version)
            raise InvalidAddressError(
                f"address is for {other or 'another network'}, not {self.network.name}",
                other_network=other,
            )
        return None


def _base58_owner(version: int) -> str | None:
    if version in MAINNET_VERSIONS:
        return "bitcoin-mainnet"
    if version in TESTNET_VERSIONS:
        return "bitcoin-testnet"
    if version in _LITECOIN_B58_VERSIONS:
        return "litecoin"
    if version == _TRON_B58_VERSION:
        return "tron"
    return None
