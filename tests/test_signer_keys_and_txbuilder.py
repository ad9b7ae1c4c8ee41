"""Pure parts of the outgoing side: the keystore (v3, scrypt), the EVM transaction builder and
EVM signing. No chain is needed: a signed transaction is decoded back and its sender recovered."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from eth_abi import encode
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes

from chaingate.chains.evm.txbuilder import (
    EvmTransfer,
    FeeCapError,
    FeeQuote,
    Fees,
    bump_fees,
    choose_fees,
    erc20_transfer_data,
    gas_limit,
    quote_from_fee_history,
    unsigned_transaction,
)
from chaingate.domain import NetworkKind
from chaingate.errors import KeystoreError, ValidationError
from chaingate.registry import load_registry
from chaingate.settings import PROJECT_ROOT
from chaingate.signer.evm import sign_evm
from chaingate.signer.keystore import (
    ENV_DEVNET_KEYS,
    ENV_KEYSTORE,
    ENV_PASSPHRASE,
    ENV_PASSPHRASE_FILE,
    decrypt_keystore,
    hot_key,
    keystore_address,
    load_keyring,
    passphrase_from_env,
    write_keystore,
)

PASSPHRASE = "correct horse battery staple"
WORK = 2**10  # scrypt n for tests; production keeps eth-account's 2**18
ANVIL_KEY_0 = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
GWEI = 10**9


def devnet_networks() -> list:
    return list(load_registry(PROJECT_ROOT / "chains" / "devnet", {}, None).values())


def mainnet_networks() -> list:
    return list(load_registry(PROJECT_ROOT / "chains", _endpoint_env(), None).values())


def _endpoint_env() -> dict[str, str]:
    """A placeholder URL for every endpoint variable the mainnet files name."""
    names = re.findall(
        r'url_env = "(\w+)"',
        "".join(p.read_text() for p in (PROJECT_ROOT / "chains").glob("*.toml")),
    )
    return {name: "https://node.invalid/key" for name in names}


# --- keystore -----------------------------------------------------------------------------------


def test_keystore_round_trip_and_address_without_passphrase(tmp_path: Path) -> None:
    secret = os.urandom(32)
    path = tmp_path / "hot.json"
    address = write_keystore(path, secret, PASSPHRASE, work=WORK)
    assert address == Account.from_key(secret).address
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    data = json.loads(path.read_text())
    assert data["version"] == 3 and data["crypto"]["kdf"] == "scrypt"
    assert secret.hex() not in path.read_text()
    assert keystore_address(path) == address
    key = decrypt_keystore(path, PASSPHRASE)
    assert key.secret == secret and key.address == address
    assert secret.hex() not in repr(key)
    with pytest.raises(KeystoreError, match="refusing to overwrite"):
        write_keystore(path, os.urandom(32), PASSPHRASE, work=WORK)


def test_wrong_passphrase_is_one_clear_error_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "hot.json"
    write_keystore(path, os.urandom(32), PASSPHRASE, work=WORK)
    with pytest.raises(KeystoreError) as caught:
        decrypt_keystore(path, "not the passphrase at all")
    assert "wrong passphrase" in str(caught.value)
    assert "not the passphrase" not in str(caught.value)


def test_short_passphrase_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="at least"):
        write_keystore(tmp_path / "k.json", os.urandom(32), "short", work=WORK)


def test_passphrase_from_env_or_file_but_not_both(tmp_path: Path) -> None:
    secret_file = tmp_path / "pass"
    secret_file.write_text(PASSPHRASE + "\n")
    assert passphrase_from_env({ENV_PASSPHRASE_FILE: str(secret_file)}) == PASSPHRASE
    assert passphrase_from_env({ENV_PASSPHRASE: PASSPHRASE}) == PASSPHRASE
    with pytest.raises(KeystoreError, match="not both"):
        passphrase_from_env({ENV_PASSPHRASE: "x", ENV_PASSPHRASE_FILE: str(secret_file)})
    with pytest.raises(KeystoreError, match="not set"):
        passphrase_from_env({})


def test_keyring_from_a_keystore_directory(tmp_path: Path) -> None:
    secrets = [os.urandom(32) for _ in range(2)]
    for i, secret in enumerate(secrets):
        write_keystore(tmp_path / f"k{i}.json", secret, PASSPHRASE, work=WORK)
    env = {ENV_KEYSTORE: str(tmp_path), ENV_PASSPHRASE: PASSPHRASE}
    ring = load_keyring(env, mainnet_networks())
    for secret in secrets:
        address = Account.from_key(secret).address
        assert ring.key_for(address.lower()).secret == secret
    assert all(s.hex() not in repr(ring) for s in secrets)
    with pytest.raises(KeystoreError, match="no key for"):
        ring.key_for("0x" + "11" * 20)


def test_raw_env_keys_only_on_devnet_networks() -> None:
    env = {ENV_DEVNET_KEYS: "0x" + ANVIL_KEY_0}
    ring = load_keyring(env, devnet_networks())
    assert ring.addresses == ["0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"]
    with pytest.raises(KeystoreError, match="refused unless every network is a devnet") as caught:
        load_keyring(env, mainnet_networks())
    assert ANVIL_KEY_0 not in str(caught.value)
    with pytest.raises(KeystoreError, match="not 32 hex bytes"):
        load_keyring({ENV_DEVNET_KEYS: "0xzz"}, devnet_networks())
    with pytest.raises(KeystoreError, match="no signing key"):
        load_keyring({}, devnet_networks())


def test_devnet_flag_is_set_only_on_the_devnet_registry() -> None:
    assert all(n.devnet for n in devnet_networks())
    assert not any(n.devnet for n in mainnet_networks())


# --- transaction building -------------------------------------------------------------------------


def test_erc20_calldata_is_the_abi_encoding_of_transfer() -> None:
    to = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    data = erc20_transfer_data(to, 12345)
    assert data[:4].hex() == "a9059cbb"
    assert data[4:] == encode(["address", "uint256"], [to, 12345])
    with pytest.raises(ValidationError):
        erc20_transfer_data(to, 0)
    with pytest.raises(ValidationError):
        erc20_transfer_data(to, 2**256)


def test_fees_from_fee_history_within_the_cap() -> None:
    history = {
        "baseFeePerGas": [hex(10 * GWEI), hex(11 * GWEI), hex(12 * GWEI)],
        "reward": [[hex(1 * GWEI)], [hex(3 * GWEI)]],
    }
    quote = quote_from_fee_history(history)
    assert quote == FeeQuote(next_base_fee=12 * GWEI, recent_tips=(1 * GWEI, 3 * GWEI))
    fees = choose_fees(quote, cap=100 * GWEI)
    assert fees == Fees(max_fee_per_gas=27 * GWEI, max_priority_fee_per_gas=3 * GWEI)
    assert choose_fees(quote, cap=20 * GWEI).max_fee_per_gas == 20 * GWEI  # held at the cap
    with pytest.raises(FeeCapError):
        choose_fees(quote, cap=14 * GWEI)  # base 12 + tip 3 does not fit


def test_replacement_fees_bump_both_fields_and_respect_the_cap() -> None:
    old = Fees(max_fee_per_gas=20 * GWEI, max_priority_fee_per_gas=2 * GWEI)
    quote = FeeQuote(next_base_fee=5 * GWEI, recent_tips=(1 * GWEI,))
    new = bump_fees(old, quote, cap=100 * GWEI)
    assert new.max_fee_per_gas >= old.max_fee_per_gas * 110 // 100
    assert new.max_priority_fee_per_gas >= old.max_priority_fee_per_gas * 110 // 100
    assert bump_fees(old, quote, cap=23 * GWEI).max_fee_per_gas == 23 * GWEI
    with pytest.raises(FeeCapError):
        bump_fees(old, quote, cap=21 * GWEI)  # 110 % of 20 gwei is over the cap


def test_gas_limits() -> None:
    assert gas_limit(None, None, 120) == 21_000
    assert gas_limit(51_000, "0x" + "22" * 20, 120) == 61_200
    with pytest.raises(ValidationError):
        gas_limit(None, "0x" + "22" * 20, 120)


@pytest.mark.parametrize("contract", [None, "0x5FbDB2315678afecb367f032d93F642f64180aa3"])
def test_signed_transfer_decodes_to_what_was_built(contract: str | None) -> None:
    key = hot_key(bytes.fromhex(ANVIL_KEY_0))
    transfer = EvmTransfer(
        chain_id=31337,
        nonce=7,
        to="0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
        amount=5 * 10**17,
        contract=contract,
        gas=60_000,
        fees=Fees(max_fee_per_gas=30 * GWEI, max_priority_fee_per_gas=2 * GWEI),
    )
    signed = sign_evm(unsigned_transaction(transfer), key)
    assert signed.raw[0] == 2  # EIP-2718 type 2
    decoded = TypedTransaction.from_bytes(HexBytes(signed.raw)).as_dict()
    assert decoded["chainId"] == 31337 and decoded["nonce"] == 7
    assert decoded["maxFeePerGas"] == 30 * GWEI and decoded["maxPriorityFeePerGas"] == 2 * GWEI
    assert Account.recover_transaction(signed.raw) == key.address
    if contract is None:
        assert decoded["value"] == transfer.amount and decoded["data"] == b""
    else:
        assert decoded["value"] == 0
        assert bytes(decoded["data"]) == erc20_transfer_data(transfer.to, transfer.amount)
    # Same inputs, same bytes: what the signer stores is what a retry would produce.
    assert sign_evm(unsigned_transaction(transfer), key).raw == signed.raw
    with pytest.raises(ValidationError):
        unsigned_transaction(dataclasses.replace(transfer, amount=0))


def test_evm_networks_in_the_registry_have_chain_ids() -> None:
    for network in devnet_networks():
        if network.kind is NetworkKind.EVM:
            assert network.chain_id


def test_signer_modules_load_no_provider_api_or_web_code() -> None:
    """The boundary at run time (import-linter checks it statically in ``make lint``):
    package ``__init__`` files run too, so a re-export there would pull aiohttp in."""
    probe = (
        "import sys, chaingate.signer.service, chaingate.signer.config, chaingate.store.queue;"
        "print(sorted(m for m in sys.modules"
        " if m.startswith(('aiohttp', 'chaingate.providers', 'chaingate.api'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
