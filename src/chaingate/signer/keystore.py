"""The signer's keys: Ethereum keystore v3 files (scrypt), or raw keys on a devnet only.

A keystore file is the JSON that ``Account.encrypt`` writes (geth, MetaMask and eth-account read
the same format). Its passphrase comes from ``CHAINGATE_SIGNER_PASSPHRASE`` or from the file named
by ``CHAINGATE_SIGNER_PASSPHRASE_FILE`` (a mounted secret; one trailing newline is dropped), never
both. ``CHAINGATE_SIGNER_KEYSTORE`` names one keystore file or a directory of them (``*.json``).

``CHAINGATE_SIGNER_DEVNET_KEYS`` (comma-separated hex private keys) is refused unless every
network the signer serves is marked ``devnet = true`` in the registry: a raw key in the
environment is fine for anvil's well-known accounts and nowhere else.

Keys never leave this module's objects in a printable form: ``HotKey`` hides its key from
``repr``, and no log event carries a key or a passphrase.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from eth_account import Account
from eth_utils.address import to_checksum_address

from chaingate.chains.tron.addresses import raw_from_public_point, to_base58
from chaingate.domain import Network
from chaingate.errors import KeystoreError

log = structlog.get_logger(__name__)

ENV_KEYSTORE = "CHAINGATE_SIGNER_KEYSTORE"
ENV_PASSPHRASE = "CHAINGATE_SIGNER_PASSPHRASE"
ENV_PASSPHRASE_FILE = "CHAINGATE_SIGNER_PASSPHRASE_FILE"
ENV_DEVNET_KEYS = "CHAINGATE_SIGNER_DEVNET_KEYS"
_MIN_PASSPHRASE = 12


@dataclass(frozen=True, slots=True)
class HotKey:
    """One hot-wallet key: its checksummed address and the 32-byte secret (never printed)."""

    address: str
    secret: bytes = field(repr=False)


def tron_address(secret: bytes) -> str:
    """The base58 T-address of a secp256k1 secret."""
    from coincurve import PrivateKey

    point = PrivateKey(secret).public_key.format(compressed=False)[1:]
    return to_base58(raw_from_public_point(point))


class KeyRing:
    """The keys the signer holds, by address (case-insensitive)."""

    def __init__(self, keys: Iterable[HotKey]) -> None:
        self._keys = {k.address.lower(): k for k in keys}
        # The same secp256k1 key is a TRON account too: its base58 T-address (case matters)
        self._tron = {tron_address(k.secret): k for k in self._keys.values()}

    def __repr__(self) -> str:
        return f"KeyRing(addresses={self.addresses})"

    @property
    def addresses(self) -> list[str]:
        return sorted(k.address for k in self._keys.values())

    def key_for(self, address: str) -> HotKey:
        key = self._tron.get(address) or self._keys.get(address.lower())
        if key is None:
            raise KeystoreError(f"the signer holds no key for {address}")
        return key


def hot_key(secret: bytes) -> HotKey:
    if len(secret) != 32:
        raise KeystoreError("a private key is 32 bytes")
    return HotKey(address=Account.from_key(secret).address, secret=secret)


# --- keystore files ------------------------------------------------------------------------------


def encrypt_key(secret: bytes, passphrase: str, *, work: int | None = None) -> dict[str, Any]:
    """The keystore v3 JSON of ``secret`` (scrypt; ``work`` is scrypt's n, a power of two,
    eth-account's default 2**18 when None: lower it only in tests)."""
    _check_passphrase(passphrase)
    return Account.encrypt(secret, passphrase, kdf="scrypt", iterations=work)


def write_keystore(path: Path, secret: bytes, passphrase: str, *, work: int | None = None) -> str:
    """Write a new keystore file (never over an existing one, mode 0600); its address."""
    keyfile = encrypt_key(secret, passphrase, work=work)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeystoreError(f"{path}: exists; refusing to overwrite a keystore") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(keyfile, out)
    address = to_checksum_address("0x" + keyfile["address"])
    log.info("keystore_written", path=str(path), address=address)
    return address


def keystore_address(path: Path) -> str:
    """The address a keystore file declares (readable without the passphrase)."""
    data = _read_json(path)
    raw = data.get("address")
    if not isinstance(raw, str):
        raise KeystoreError(f"{path}: not a keystore v3 file (no address)")
    return to_checksum_address("0x" + raw.removeprefix("0x"))


def decrypt_keystore(path: Path, passphrase: str) -> HotKey:
    """The key in ``path``; a wrong passphrase or a tampered file is one clear error."""
    data = _read_json(path)
    try:
        secret = bytes(Account.decrypt(data, passphrase))
    except ValueError:
        # eth-account says "MAC mismatch" for a wrong passphrase; never echo what was tried.
        raise KeystoreError(f"{path}: wrong passphrase or damaged keystore") from None
    key = hot_key(secret)
    declared = data.get("address")
    if isinstance(declared, str) and declared.lower().removeprefix("0x") != key.address[2:].lower():
        raise KeystoreError(f"{path}: the key does not match the address the file declares")
    return key


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeystoreError(f"{path}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError:
        raise KeystoreError(f"{path}: not JSON (expected a keystore v3 file)") from None
    if not isinstance(data, dict) or data.get("version") != 3:
        raise KeystoreError(f"{path}: not a keystore v3 file")
    return data


def _check_passphrase(passphrase: str) -> None:
    if len(passphrase) < _MIN_PASSPHRASE:
        raise KeystoreError(f"the keystore passphrase must have at least {_MIN_PASSPHRASE} chars")


# --- the environment ----------------------------------------------------------------------------


def passphrase_from_env(env: Mapping[str, str]) -> str:
    """The passphrase from the environment or the file it names (exactly one of them)."""
    inline, file_name = env.get(ENV_PASSPHRASE, ""), env.get(ENV_PASSPHRASE_FILE, "").strip()
    if inline and file_name:
        raise KeystoreError(f"set {ENV_PASSPHRASE} or {ENV_PASSPHRASE_FILE}, not both")
    if file_name:
        try:
            text = Path(file_name).read_text(encoding="utf-8")
        except OSError as exc:
            raise KeystoreError(f"{ENV_PASSPHRASE_FILE}: cannot read: {exc.strerror}") from None
        inline = text.removesuffix("\n")
    if not inline:
        raise KeystoreError(f"{ENV_PASSPHRASE} or {ENV_PASSPHRASE_FILE}: not set")
    return inline


def keystore_files(location: Path) -> list[Path]:
    if location.is_dir():
        files = sorted(location.glob("*.json"))
        if not files:
            raise KeystoreError(f"{ENV_KEYSTORE}: {location} holds no *.json keystore")
        return files
    if not location.is_file():
        raise KeystoreError(f"{ENV_KEYSTORE}: {location} does not exist")
    return [location]


def load_keyring(env: Mapping[str, str], networks: Iterable[Network]) -> KeyRing:
    """The signer's keys: from the keystore, or (devnet networks only) from the environment."""
    served = list(networks)
    keys: list[HotKey] = []
    raw = env.get(ENV_DEVNET_KEYS, "").strip()
    if raw:
        not_devnet = [n.name for n in served if not n.devnet]
        if not_devnet or not served:
            raise KeystoreError(
                f"{ENV_DEVNET_KEYS}: raw keys are refused unless every network is a devnet "
                f"(not devnet: {', '.join(not_devnet) or 'no network configured'})"
            )
        for i, item in enumerate(p.strip() for p in raw.split(",") if p.strip()):
            try:
                keys.append(hot_key(bytes.fromhex(item.removeprefix("0x"))))
            except ValueError:
                raise KeystoreError(
                    f"{ENV_DEVNET_KEYS}: key #{i + 1} is not 32 hex bytes"
                ) from None
    location = env.get(ENV_KEYSTORE, "").strip()
    if location:
        passphrase = passphrase_from_env(env)
        keys.extend(decrypt_keystore(f, passphrase) for f in keystore_files(Path(location)))
    if not keys:
        raise KeystoreError(f"no signing key: set {ENV_KEYSTORE} (or {ENV_DEVNET_KEYS} on devnet)")
    ring = KeyRing(keys)
    log.info("signer_keys_loaded", addresses=ring.addresses, devnet_keys=bool(raw))
    return ring
