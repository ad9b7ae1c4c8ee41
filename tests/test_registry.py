"""The chains/ registry and the environment: valid files load, bad values are one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaingate.domain import AssetStandard, NetworkKind
from chaingate.errors import ConfigError
from chaingate.registry import load_registry
from chaingate.settings import PROJECT_ROOT, Settings, parse_api_tokens

CHAINS = PROJECT_ROOT / "chains"
MAINNET_ENV = {
    name: "https://nd-123-456.p2pify.com/0123456789abcdef0123456789abcdef"
    for name in [
        "CHAINGATE_ETHEREUM_MAINNET_RPC_1", "CHAINGATE_ETHEREUM_MAINNET_RPC_2",
        "CHAINGATE_BSC_MAINNET_RPC_1", "CHAINGATE_BITCOIN_MAINNET_RPC_1",
        "CHAINGATE_BITCOIN_MAINNET_RPC_2", "CHAINGATE_TRON_MAINNET_URL_1",
        "CHAINGATE_TRON_MAINNET_URL_2",
    ]
}  # fmt: skip


def test_mainnet_registry_holds_the_real_contracts() -> None:
    networks = load_registry(CHAINS, MAINNET_ENV)
    eth = networks["ethereum-mainnet"]
    assert eth.kind is NetworkKind.EVM and eth.chain_id == 1
    nexo = eth.asset("NEXO")
    assert nexo.contract == "0xb62132e35a6c13ee1ee0f84dc5d40bad8d815206"
    assert nexo.decimals == 18 and nexo.standard is AssetStandard.ERC20
    assert eth.asset("USDT").contract == "0xdac17f958d2ee523a2206206994597c13d831ec7"
    assert eth.asset("USDT").decimals == 6
    tron_usdt = networks["tron-mainnet"].asset("USDT")
    assert (tron_usdt.contract, tron_usdt.decimals) == ("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t", 6)
    assert networks["bsc-mainnet"].watch_only
    assert networks["bsc-mainnet"].watch_addresses_of == ("ethereum-mainnet",)
    assert networks["bitcoin-mainnet"].hrp == "bc"
    # URLs come from the environment and never show in repr (they carry the provider key).
    assert "0123456789abcdef" not in repr(eth)


def test_devnet_registry_loads_without_environment() -> None:
    networks = load_registry(CHAINS / "devnet", {})
    assert set(networks) >= {"ethereum-devnet", "bsc-devnet", "bitcoin-devnet", "tron-devnet"}
    assert networks["ethereum-devnet"].xpub is not None


def test_balance_reconciliation_settings() -> None:
    eth = load_registry(CHAINS, MAINNET_ENV)["ethereum-mainnet"]
    assert not eth.tracing  # internal ETH transfers are found by reconciliation alone
    assert (eth.reconcile, eth.reconcile_interval, eth.reconcile_batch) == (True, 60.0, 200)
    devnet = load_registry(CHAINS / "devnet", {})["ethereum-devnet"]
    assert (devnet.reconcile, devnet.reconcile_interval, devnet.reconcile_batch) == (True, 5.0, 100)


def test_large_amounts_need_more_confirmations() -> None:
    eth = load_registry(CHAINS, MAINNET_ENV)["ethereum-mainnet"]
    asset = eth.asset("ETH")
    assert asset.required_confirmations(10**18, eth.confirmations) == 12
    assert asset.required_confirmations(100 * 10**18, eth.confirmations) == 64


def test_selecting_networks_needs_only_their_environment() -> None:
    env = {
        "CHAINGATE_BITCOIN_MAINNET_RPC_1": "https://a.example/k1",
        "CHAINGATE_BITCOIN_MAINNET_RPC_2": "https://b.example/k2",
    }
    assert list(load_registry(CHAINS, env, ["bitcoin-mainnet"])) == ["bitcoin-mainnet"]


def _write(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / "chains"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.toml").write_text(text)
    return folder


GOOD = """
name = "x-net"
kind = "evm"
chain_id = 5
block_time = 1
poll_interval = 1
confirmations = 2
[[endpoints]]
name = "a"
url = "http://127.0.0.1:1"
[[assets]]
symbol = "ETH"
decimals = 18
"""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("decimals = 18", 'decimals = "18"'),
            "x-net.toml: assets[0].decimals: expected an integer, got '18'",
        ),
        (
            ("confirmations = 2", "confirmations = 0"),
            "x-net.toml: confirmations: must be positive, got 0",
        ),
        (('kind = "evm"', 'kind = "solana"'), "x-net.toml: kind: unknown kind 'solana'"),
        (("chain_id = 5\n", ""), "x-net.toml: chain_id: is required for an evm network"),
        (
            ('url = "http://127.0.0.1:1"', 'url_env = "X_NET_RPC"'),
            "set the environment variable X_NET_RPC",
        ),
        (("confirmations = 2", "confirmations = 2\ncolour = 1"), "x-net.toml: colour: unknown key"),
        (
            ('name = "x-net"', 'name = "y-net"'),
            "x-net.toml: name: must equal the file name 'x-net'",
        ),
        (
            (
                "decimals = 18",
                'decimals = 18\n[[assets]]\nsymbol = "T"\ndecimals = 6\ncontract = "0x12"',
            ),
            "x-net.toml: assets[1].contract: not a 0x-prefixed 20-byte hex address: '0x12'",
        ),
        (
            ("block_time = 1", 'block_time = 1\nxpub = "xpubNOTAKEY"'),
            "x-net.toml: xpub: extended public key is not valid",
        ),
        (("[[endpoints]]", "[[endpoints]"), "x-net.toml: not valid TOML"),
        (
            ("confirmations = 2", "confirmations = 2\nreconcile_batch = 0"),
            "x-net.toml: reconcile_batch: must be positive, got 0",
        ),
        (
            ("confirmations = 2", 'confirmations = 2\nreconcile = "yes"'),
            "x-net.toml: reconcile: expected true or false, got 'yes'",
        ),
    ],
)
def test_registry_errors_are_one_clear_line(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    folder = _write(tmp_path, "x-net", GOOD.replace(*change))
    with pytest.raises(ConfigError) as info:
        load_registry(folder, {})
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_a_private_key_in_the_registry_is_refused_without_echoing_it(tmp_path: Path) -> None:
    xprv = (
        "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPG"
        "JxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi"
    )
    folder = _write(
        tmp_path, "x-net", GOOD.replace("block_time = 1", f'block_time = 1\nxpub = "{xprv}"')
    )
    with pytest.raises(ConfigError) as info:
        load_registry(folder, {})
    assert "PRIVATE" in str(info.value) and xprv not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://ledger.example/api",
        "http://127.0.0.1:8081",
        "http://127.8.9.1",
        "http://[::1]:80",
        "http://localhost:9000/x",
        "http://LOCALHOST",
    ],
)
def test_ledger_urls_over_https_or_to_this_host_are_accepted(url: str) -> None:
    env = {
        "CHAINGATE_DATABASE_URL": "postgresql://u@h/db",
        "CHAINGATE_LEDGER_URL": url,
        "CHAINGATE_LEDGER_SECRET": "s" * 16,
    }
    assert Settings.from_env(env).ledger_url == url


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"CHAINGATE_DATABASE_URL": "mysql://x"},
            "CHAINGATE_DATABASE_URL: must start with postgresql://",
        ),
        (
            {"CHAINGATE_API_PORT": "http"},
            "CHAINGATE_API_PORT: expected a TCP port number, got 'http'",
        ),
        ({"CHAINGATE_API_TOKENS": "{nope"}, "CHAINGATE_API_TOKENS: not valid JSON"),
        (
            {"CHAINGATE_LEDGER_URL": "http://localhost", "CHAINGATE_LEDGER_SECRET": "short"},
            "CHAINGATE_LEDGER_SECRET: required",
        ),
        # Credits in the clear over the network: https is required off this host.
        (
            {"CHAINGATE_LEDGER_URL": "http://10.1.2.3:8080/ledger"},
            "CHAINGATE_LEDGER_URL: http:// is allowed only to this host",
        ),
        (
            {"CHAINGATE_LEDGER_URL": "http://ledger.internal"},
            "CHAINGATE_LEDGER_URL: http:// is allowed only to this host",
        ),
        (
            {"CHAINGATE_LEDGER_URL": "http://127.0.0.1.nip.io"},
            "CHAINGATE_LEDGER_URL: http:// is allowed only to this host",
        ),
        ({"CHAINGATE_LEDGER_URL": "ftp://127.0.0.1"}, "CHAINGATE_LEDGER_URL: expected an https://"),
        ({"CHAINGATE_LEDGER_URL": "https://"}, "CHAINGATE_LEDGER_URL: expected an https://"),
        (
            {"CHAINGATE_NETWORKS": "dogecoin-devnet"},
            "CHAINGATE_NETWORKS: unknown network 'dogecoin-devnet'",
        ),
        (
            {"CHAINGATE_LOG_FORMAT": "xml"},
            "CHAINGATE_LOG_FORMAT: expected one of auto, console, json",
        ),
        ({}, "CHAINGATE_DATABASE_URL: not set"),
        ({"CHAINGATE_APPROVAL_QUORUM": "0"}, "CHAINGATE_APPROVAL_QUORUM: expected an integer"),
        ({"CHAINGATE_APPROVAL_QUORUM": "two"}, "CHAINGATE_APPROVAL_QUORUM: expected an integer"),
        ({"CHAINGATE_APPROVAL_SEAL_KEY": "short-key"}, "CHAINGATE_APPROVAL_SEAL_KEY: at least 32"),
    ],
)
def test_bad_environment_values_are_one_clear_line(env: dict[str, str], message: str) -> None:
    full = (
        {"CHAINGATE_DATABASE_URL": "postgresql://u@h/db"}
        if "CHAINGATE_DATABASE_URL" not in env and env
        else {}
    )
    full.update(env)
    with pytest.raises(ConfigError) as info:
        Settings.from_env(full)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_api_tokens_map_to_roles_and_are_never_echoed() -> None:
    token = "s3cr3t-token-value-000000"
    tokens = parse_api_tokens(f'{{"{token}": {{"principal": "ledger", "roles": ["service"]}}}}')
    assert tokens[token].roles == frozenset({"service"})
    with pytest.raises(ConfigError) as info:
        parse_api_tokens(f'{{"{token}": {{"principal": "x", "roles": ["root"]}}}}')
    assert token not in str(info.value) and "unknown role 'root'" in str(info.value)


LIMITS = """
max_withdrawal = "100"
max_withdrawal_per_user_day = "500"
max_batch_total = "1000"
fee_cap = "7"
"""


def test_withdrawal_limits_load_and_enable_withdrawals(tmp_path: Path) -> None:
    folder = _write(tmp_path, "x-net", GOOD + LIMITS + "min_withdrawal = 2\n")
    asset = load_registry(folder, {})["x-net"].asset("ETH")
    assert asset.withdrawals_enabled
    limits = asset.withdrawal_limits
    assert limits is not None
    assert (limits.per_request, limits.per_user_day, limits.per_batch) == (100, 500, 1000)
    assert (limits.fee_cap, limits.min_amount, limits.max_batch_outputs) == (7, 2, 100)
    # Without limits an asset cannot be withdrawn at all (a safe default).
    bare = load_registry(_write(tmp_path, "x-net", GOOD), {})["x-net"].asset("ETH")
    assert not bare.withdrawals_enabled and bare.withdrawal_limits is None
    mainnet = load_registry(CHAINS, MAINNET_ENV)
    assert mainnet["ethereum-mainnet"].asset("NEXO").withdrawals_enabled
    assert not mainnet["bsc-mainnet"].asset("USDT").withdrawals_enabled


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD + "withdrawals = true\n", "assets[0].withdrawals: true needs the withdrawal limits"),
        (GOOD + 'max_withdrawal = "5"\n', "assets[0].max_withdrawal_per_user_day: withdrawal"),
        (GOOD + LIMITS.replace('"500"', '"50"'), "max_withdrawal: must not exceed max_withdrawal_"),
        (GOOD + LIMITS.replace('"1000"', '"10"'), "max_withdrawal: must not exceed max_batch"),
        (GOOD + LIMITS.replace('"7"', '"0"'), "assets[0].fee_cap: must be a positive amount"),
        (GOOD + LIMITS.replace('"7"', '"-7"'), "assets[0].fee_cap: expected a non-negative"),
        (GOOD + LIMITS + "min_withdrawal = 101\n", "min_withdrawal: must not exceed"),
        (
            GOOD.replace("confirmations = 2", "confirmations = 2\nwatch_only = true") + LIMITS,
            "watch_only: a watch-only network sends nothing",
        ),
    ],
)
def test_bad_withdrawal_limits_are_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_registry(_write(tmp_path, "x-net", text), {})
    assert message in str(info.value)


def test_approval_settings_default_to_a_quorum_of_two_and_never_show_the_key() -> None:
    base = {"CHAINGATE_DATABASE_URL": "postgresql://u@h/db"}
    assert Settings.from_env(base).approval_quorum == 2
    key = "seal-key-" + "x" * 40
    settings = Settings.from_env(
        {**base, "CHAINGATE_APPROVAL_QUORUM": "3", "CHAINGATE_APPROVAL_SEAL_KEY": key}
    )
    assert (settings.approval_quorum, settings.approval_seal_key) == (3, key.encode())
    assert key not in repr(settings)


TRON_GOOD = GOOD.replace(
    'kind = "evm"\nchain_id = 5', 'kind = "tron"\ngenesis = "' + "ab" * 32 + '"'
)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("genesis = ", "# genesis = "), "genesis: is required"),
        (("ab" * 32, "AB" * 32), "genesis: must be 64 lowercase hex digits"),
        (("genesis = ", "learn_genesis = true\n# "), "learn_genesis: is allowed on a testnet"),
        (
            ("genesis = ", "testnet = true\nlearn_genesis = true\ngenesis = "),
            "give either genesis or learn_genesis",
        ),
    ],
)
def test_bitcoin_and_tron_networks_name_their_genesis_block(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    folder = _write(tmp_path, "x-net", TRON_GOOD.replace(*change))
    with pytest.raises(ConfigError, match=message):
        load_registry(folder, {})


def test_the_registry_holds_the_real_genesis_blocks() -> None:
    networks = load_registry(CHAINS, MAINNET_ENV)
    assert networks["bitcoin-mainnet"].genesis == (
        "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
    )
    assert networks["tron-mainnet"].genesis == (
        "00000000000000001ebf88508a03865c71d452e25f4d51194196a1d22b6653dc"
    )
