"""The chains/ registry: one TOML file per network, validated into ``Network`` objects.

Every problem is reported as ONE line naming the file, the key and what is wrong, e.g.
``chains/ethereum-mainnet.toml: assets[1].decimals: expected an integer, got "18"``.
Endpoint URLs and xpubs are read from environment variables named in the file (a hosted
endpoint's URL carries its key), with an optional non-secret default for devnets.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from chaingate.domain import (
    Asset,
    AssetStandard,
    Endpoint,
    Network,
    NetworkKind,
    WithdrawalLimits,
)
from chaingate.errors import ConfigError

T = TypeVar("T")

_NETWORK_KEYS = {
    "name",
    "kind",
    "chain_id",
    "hrp",
    "genesis",
    "learn_genesis",
    "testnet",
    "devnet",
    "hot_address",
    "replace_after",
    "tx_expiration",
    "block_time",
    "poll_interval",
    "confirmations",
    "watch_only",
    "watch_addresses_of",
    "xpub",
    "xpub_env",
    "reorg_window",
    "scan_batch",
    "max_head_lag",
    "tracing",
    "coinbase_maturity",
    "solidity_finality",
    "start_height",
    "reconcile",
    "reconcile_interval",
    "reconcile_batch",
    "endpoints",
    "assets",
    "description",
}
_ENDPOINT_KEYS = {
    "name",
    "url",
    "url_env",
    "rate_limit",
    "timeout",
    "weight",
    "max_batch",
    "max_log_range",
}
_ASSET_KEYS = {
    "symbol",
    "decimals",
    "standard",
    "contract",
    "min_deposit",
    "confirmations",
    "large_amount",
    "large_confirmations",
    "deposits",
    "withdrawals",
    "min_withdrawal",
    "max_withdrawal",
    "max_withdrawal_per_user_day",
    "max_batch_total",
    "max_batch_outputs",
    "fee_cap",
    "description",
}
# Without all of these an asset cannot be withdrawn (see _withdrawal_limits).
_LIMIT_KEYS = ("max_withdrawal", "max_withdrawal_per_user_day", "max_batch_total", "fee_cap")


class _Table:
    """A TOML table with typed getters that raise ConfigError naming file and key."""

    def __init__(self, data: Mapping[str, Any], where: str, allowed: set[str]) -> None:
        self.data = data
        self.where = where
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ConfigError(
                f"{where}{unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})"
            )

    def fail(self, key: str, what: str) -> ConfigError:
        return ConfigError(f"{self.where}{key}: {what}")

    def get(
        self, key: str, kind: type[T], default: T | None = None, *, required: bool = False
    ) -> T:
        if key not in self.data:
            if required:
                raise self.fail(key, "is required")
            return default  # type: ignore[return-value]
        value = self.data[key]
        # bool is an int subclass; a confirmations count of `true` is a mistake, not 1.
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                return float(value)  # type: ignore[return-value]
            raise self.fail(key, f"expected {_kind_name(kind)}, got {value!r}")
        return value

    def amount(self, key: str, default: int | None = None) -> int | None:
        """Base-unit amounts: integers, or strings of digits (TOML ints stop at 2^63)."""
        if key not in self.data:
            return default
        value = self.data[key]
        if isinstance(value, str) and value.isdigit():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise self.fail(key, f"expected a non-negative integer amount in base units, got {value!r}")

    def positive(
        self, key: str, kind: type[T], default: T | None = None, *, required: bool = False
    ) -> T:
        value = self.get(key, kind, default, required=required)
        if value is not None and value <= 0:  # type: ignore[operator]
            raise self.fail(key, f"must be positive, got {value!r}")
        return value


def _kind_name(kind: type) -> str:
    return {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true or false",
        list: "a list",
        dict: "a table",
    }.get(kind, kind.__name__)


def _secret(table: _Table, key: str, env_key: str, env: Mapping[str, str]) -> str | None:
    env_name = table.get(env_key, str)
    if env_name:
        value = env.get(env_name, "").strip()
        if value:
            return value
    return table.get(key, str)


def _endpoint(raw: Any, where: str, env: Mapping[str, str]) -> Endpoint:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table")
    t = _Table(raw, where + ".", _ENDPOINT_KEYS)
    name = t.get("name", str, required=True)
    url = _secret(t, "url", "url_env", env)
    if not url:
        env_name = t.get("url_env", str)
        hint = f"set the environment variable {env_name}" if env_name else "give url or url_env"
        raise t.fail("url_env", f"no URL for endpoint {name!r}: {hint}")
    if not url.startswith(("http://", "https://")):
        raise t.fail("url", f"endpoint {name!r} URL must start with http:// or https://")
    return Endpoint(
        name=name,
        url=url,
        rate_limit=t.positive("rate_limit", float, 25.0),
        timeout=t.positive("timeout", float, 10.0),
        weight=t.positive("weight", int, 1),
        max_batch=t.positive("max_batch", int, 50),
        max_log_range=t.positive("max_log_range", int, 10_000),
    )


def _asset(raw: Any, where: str, kind: NetworkKind) -> Asset:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table")
    t = _Table(raw, where + ".", _ASSET_KEYS)
    symbol = t.get("symbol", str, required=True)
    decimals = t.get("decimals", int, required=True)
    if not 0 <= decimals <= 36:
        raise t.fail("decimals", f"must be between 0 and 36, got {decimals}")
    contract = t.get("contract", str)
    token_standard = {
        NetworkKind.EVM: AssetStandard.ERC20,
        NetworkKind.TRON: AssetStandard.TRC20,
        NetworkKind.BITCOIN: AssetStandard.NATIVE,
    }[kind]
    default_standard = AssetStandard.NATIVE if contract is None else token_standard
    standard_text = t.get("standard", str, default_standard.value)
    try:
        standard = AssetStandard(standard_text)
    except ValueError:
        choices = ", ".join(s.value for s in AssetStandard)
        raise t.fail("standard", f"unknown standard {standard_text!r} (one of {choices})") from None
    if (standard is AssetStandard.NATIVE) != (contract is None):
        raise t.fail("contract", "a token needs a contract and a native coin must not have one")
    canonical = _canonical_contract(t, kind, standard, contract)
    min_deposit = t.amount("min_deposit", 1)
    large_amount = t.amount("large_amount")
    large_confirmations = t.positive("large_confirmations", int)
    if (large_amount is None) != (large_confirmations is None):
        raise t.fail("large_confirmations", "large_amount and large_confirmations go together")
    limits, withdrawals = _withdrawal_limits(t)
    return Asset(
        symbol=symbol,
        decimals=decimals,
        standard=standard,
        contract=canonical,
        min_deposit=min_deposit if min_deposit is not None else 1,
        confirmations=t.positive("confirmations", int),
        large_amount=large_amount,
        large_confirmations=large_confirmations,
        deposits_enabled=t.get("deposits", bool, True),
        withdrawals_enabled=withdrawals,
        withdrawal_limits=limits,
    )


def _withdrawal_limits(t: _Table) -> tuple[WithdrawalLimits | None, bool]:
    """The asset's withdrawal limits and whether withdrawals are enabled.

    Withdrawals need every limit: ``withdrawals = true`` without them is an error, and when the
    key is absent an asset is withdrawable exactly when its limits are given.
    """
    present = [k for k in _LIMIT_KEYS if k in t.data]
    missing = [k for k in _LIMIT_KEYS if k not in t.data]
    enabled = t.get("withdrawals", bool, not missing)
    if present and missing:
        raise t.fail(missing[0], f"withdrawal limits go together ({', '.join(_LIMIT_KEYS)})")
    if not present:
        if enabled:
            raise t.fail(
                "withdrawals", f"true needs the withdrawal limits {', '.join(_LIMIT_KEYS)}"
            )
        return None, False
    amounts = {k: t.amount(k) for k in (*_LIMIT_KEYS, "min_withdrawal")}
    for key in _LIMIT_KEYS:
        if not amounts[key]:
            raise t.fail(key, "must be a positive amount in base units")
    limits = WithdrawalLimits(
        per_request=amounts["max_withdrawal"] or 0,
        per_user_day=amounts["max_withdrawal_per_user_day"] or 0,
        per_batch=amounts["max_batch_total"] or 0,
        fee_cap=amounts["fee_cap"] or 0,
        min_amount=amounts["min_withdrawal"] or 1,
        max_batch_outputs=t.positive("max_batch_outputs", int, 100),
    )
    if limits.min_amount > limits.per_request:
        raise t.fail("min_withdrawal", "must not exceed max_withdrawal")
    if limits.per_request > limits.per_user_day:
        raise t.fail("max_withdrawal", "must not exceed max_withdrawal_per_user_day")
    if limits.per_request > limits.per_batch:
        raise t.fail("max_withdrawal", "must not exceed max_batch_total (it could never be sent)")
    return limits, enabled


def _canonical_contract(
    t: _Table, kind: NetworkKind, standard: AssetStandard, contract: str | None
) -> str | None:
    if contract is None:
        return None
    if standard is AssetStandard.ERC20:
        if kind is not NetworkKind.EVM:
            raise t.fail("standard", f"erc20 assets belong on evm networks, not {kind.value}")
        body = contract[2:] if contract.startswith("0x") else ""
        if len(body) != 40 or any(c not in "0123456789abcdefABCDEF" for c in body):
            raise t.fail("contract", f"not a 0x-prefixed 20-byte hex address: {contract!r}")
        return contract.lower()  # match logs case-insensitively; display uses EIP-55 elsewhere
    if standard is AssetStandard.TRC20 and not (contract.startswith("T") and len(contract) == 34):
        raise t.fail("contract", f"not a base58 T-address: {contract!r}")
    if standard is AssetStandard.TRC10 and not contract.isdigit():
        raise t.fail(
            "contract", f"a TRC-10 token is identified by its numeric id, got {contract!r}"
        )
    return contract


def load_network(path: Path, env: Mapping[str, str]) -> Network:
    where = f"{path}: "
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid TOML: {exc}", hint="fix the TOML syntax at that line"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    t = _Table(raw, where, _NETWORK_KEYS)
    name = t.get("name", str, required=True)
    if name != path.stem:
        raise t.fail("name", f"must equal the file name {path.stem!r} (got {name!r})")
    kind_text = t.get("kind", str, required=True)
    try:
        kind = NetworkKind(kind_text)
    except ValueError:
        raise t.fail("kind", f"unknown kind {kind_text!r} (one of evm, bitcoin, tron)") from None
    endpoints_raw = t.get("endpoints", list, required=True)
    if not endpoints_raw:
        raise t.fail("endpoints", "at least one endpoint is required")
    endpoints = tuple(
        _endpoint(e, f"{where}endpoints[{i}]", env) for i, e in enumerate(endpoints_raw)
    )
    assets = tuple(
        _asset(a, f"{where}assets[{i}]", kind)
        for i, a in enumerate(t.get("assets", list, required=True))
    )
    _check_assets(t, kind, assets)
    chain_id = t.positive("chain_id", int)
    hrp = t.get("hrp", str)
    if kind is NetworkKind.EVM and chain_id is None:
        raise t.fail("chain_id", "is required for an evm network")
    if kind is NetworkKind.BITCOIN and not hrp:
        raise t.fail("hrp", "is required for a bitcoin network (bc, tb, bcrt)")
    genesis, learn_genesis = _genesis(t, kind)
    watch_only = t.get("watch_only", bool, False)
    if watch_only and any(a.withdrawals_enabled for a in assets):
        raise t.fail("watch_only", "a watch-only network sends nothing: set withdrawals = false")
    xpub = _secret(t, "xpub", "xpub_env", env)
    if xpub is not None:
        from chaingate.chains.hdkeys import validate_xpub

        try:
            validate_xpub(xpub)
        except ConfigError as exc:
            raise t.fail(t.get("xpub_env", str) or "xpub", str(exc)) from None
    return Network(
        name=name,
        kind=kind,
        chain_id=chain_id,
        hrp=hrp,
        genesis=genesis,
        learn_genesis=learn_genesis,
        testnet=t.get("testnet", bool, False),
        devnet=t.get("devnet", bool, False),
        hot_address=_hot_address(t, kind),
        replace_after=t.positive("replace_after", float, 300.0),
        tx_expiration=_tx_expiration(t),
        confirmations=t.positive("confirmations", int, required=True),
        block_time=t.positive("block_time", float, required=True),
        poll_interval=t.positive("poll_interval", float, required=True),
        endpoints=endpoints,
        assets=assets,
        watch_only=watch_only,
        watch_addresses_of=tuple(t.get("watch_addresses_of", list, [])),
        xpub=xpub,
        reorg_window=t.positive("reorg_window", int, 256),
        scan_batch=t.positive("scan_batch", int, 100),
        max_head_lag=t.positive("max_head_lag", int, 5),
        tracing=t.get("tracing", bool, False),
        coinbase_maturity=t.positive("coinbase_maturity", int, 100),
        solidity_finality=t.get("solidity_finality", bool, False),
        start_height=t.get("start_height", int),
        reconcile=t.get("reconcile", bool, True),
        reconcile_interval=t.positive("reconcile_interval", float, 60.0),
        reconcile_batch=t.positive("reconcile_batch", int, 500),
    )


def _hot_address(t: _Table, kind: NetworkKind) -> str | None:
    """The address withdrawals leave from (public; its key is only in the signer)."""
    raw = t.get("hot_address", str)
    if raw is None:
        return None
    if kind is NetworkKind.TRON:
        from chaingate.chains.tron.addresses import from_base58, to_base58

        try:
            return to_base58(from_base58(raw))
        except ValueError:
            raise t.fail("hot_address", "expected a base58 TRON T-address") from None
    if kind is not NetworkKind.EVM:
        raise t.fail("hot_address", "is only read for evm and tron networks so far")
    if not re.fullmatch(r"0x[0-9a-fA-F]{40}", raw):
        raise t.fail("hot_address", "expected 0x followed by 40 hex digits")
    return raw.lower()


def _tx_expiration(t: _Table) -> int:
    """TRON: java-tron refuses an expiration more than 24 h past its head."""
    seconds = t.positive("tx_expiration", int, 60)
    if seconds > 86_400:
        raise t.fail("tx_expiration", "must be at most 86400 seconds (java-tron's limit)")
    return seconds


def _genesis(t: _Table, kind: NetworkKind) -> tuple[str | None, bool]:
    """The genesis block every endpoint must prove (Bitcoin, TRON; EVM proves its chain id)."""
    genesis = t.get("genesis", str)
    learn = t.get("learn_genesis", bool, False)
    if kind is NetworkKind.EVM:
        if genesis is not None or learn:
            raise t.fail("genesis", "an evm network proves its chain_id, not a genesis block")
        return None, False
    if learn:
        if not t.get("testnet", bool, False):
            raise t.fail("learn_genesis", "is allowed on a testnet/devnet only")
        if genesis is not None:
            raise t.fail("learn_genesis", "give either genesis or learn_genesis, not both")
        return None, True
    if genesis is None:
        raise t.fail("genesis", "is required: the block hash (id) at height 0 of this chain")
    if len(genesis) != 64 or any(c not in "0123456789abcdef" for c in genesis):
        raise t.fail("genesis", "must be 64 lowercase hex digits")
    return genesis, False


def _check_assets(t: _Table, kind: NetworkKind, assets: tuple[Asset, ...]) -> None:
    symbols = [a.symbol for a in assets]
    for symbol in symbols:
        if symbols.count(symbol) > 1:
            raise t.fail("assets", f"symbol {symbol!r} is listed twice")
    contracts = [a.contract for a in assets if a.contract]
    for contract in contracts:
        if contracts.count(contract) > 1:
            raise t.fail("assets", f"contract {contract} is listed twice")
    if sum(a.standard is AssetStandard.NATIVE for a in assets) != 1:
        raise t.fail("assets", "exactly one native asset (no contract) is required")


def load_registry(
    directory: Path, env: Mapping[str, str], only: Sequence[str] | None = None
) -> dict[str, Network]:
    """``*.toml`` directly in ``directory`` (not sub-folders), keyed by network name.

    ``only`` selects networks by name (= file stem) so that an instance running one network does
    not need the endpoints of the others.
    """
    if not directory.is_dir():
        raise ConfigError(f"{directory}: the chains registry folder does not exist")
    available = {path.stem: path for path in sorted(directory.glob("*.toml"))}
    if not available:
        raise ConfigError(f"{directory}: no network files (*.toml) found")
    wanted = list(only) if only else list(available)
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise ConfigError(
            f"CHAINGATE_NETWORKS: unknown network {unknown[0]!r} "
            f"(in {directory}: {', '.join(available)})"
        )
    networks = {name: load_network(available[name], env) for name in wanted}
    for network in networks.values():
        for other in network.watch_addresses_of:
            if other not in available:
                raise ConfigError(
                    f"{available[network.name]}: watch_addresses_of: unknown network {other!r}"
                )
    return networks
