"""The signer's own settings: its database role, its keys, its limits, the seal key.

Built once in ``chaingate signer`` from the chains/ registry and the environment:

- ``CHAINGATE_SIGNER_DATABASE_URL``: the signer's own role (deploy/sql/signer_role.sql); falls
  back to ``CHAINGATE_DATABASE_URL``.
- ``CHAINGATE_APPROVAL_SEAL_KEY`` and ``CHAINGATE_APPROVAL_QUORUM``: as the API's (required).
- ``CHAINGATE_SIGNER_LIMITS``: a TOML file with the signer's own per-asset limits::

      [ethereum-mainnet.ETH]
      per_transaction = "5000000000000000000"     # base units
      per_day = "50000000000000000000"

  An asset without a limit is never signed (fail closed).
- ``CHAINGATE_SIGNER_LEASE_SECONDS``: how long a claimed job and the allocator lease last
  (default 30; renewed while working; a crashed signer's work comes back after it).
- keys: see ``signer/keystore.py``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from chaingate.domain import Network, NetworkKind
from chaingate.errors import ConfigError
from chaingate.settings import Settings
from chaingate.signer.checks import SignerLimit
from chaingate.signer.keystore import KeyRing, load_keyring

ENV_LIMITS = "CHAINGATE_SIGNER_LIMITS"
ENV_DATABASE = "CHAINGATE_SIGNER_DATABASE_URL"
ENV_LEASE = "CHAINGATE_SIGNER_LEASE_SECONDS"


@dataclass(frozen=True)
class SignerSettings:
    database_url: str = field(repr=False)
    networks: dict[str, Network]
    keys: KeyRing
    seal_key: bytes = field(repr=False)
    quorum: int
    limits: dict[tuple[str, str], SignerLimit]
    lease_seconds: float = 30.0
    allocator_ttl: float = 30.0
    plan_max_age: float = 120.0  # seconds; an older plan is sent back to the planner
    poll_interval: float = 0.5

    def limit(self, network: str, asset: str) -> SignerLimit | None:
        return self.limits.get((network, asset))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SignerSettings:
        base = Settings.from_env(env, require_database=False)
        database_url = env.get(ENV_DATABASE, "").strip() or base.database_url
        if not database_url:
            raise ConfigError(f"{ENV_DATABASE} (or CHAINGATE_DATABASE_URL): not set")
        if not base.approval_seal_key:
            raise ConfigError("CHAINGATE_APPROVAL_SEAL_KEY: the signer cannot check approvals")
        signed = (NetworkKind.EVM, NetworkKind.TRON)
        hot = {n.name: n for n in base.networks.values() if n.kind in signed}
        keys = load_keyring(env, base.networks.values())
        for network in hot.values():
            if network.hot_address is not None:
                keys.key_for(network.hot_address)  # fail at start, not at the first job
        return cls(
            database_url=database_url,
            networks=base.networks,
            keys=keys,
            seal_key=base.approval_seal_key,
            quorum=base.approval_quorum,
            limits=load_limits(env.get(ENV_LIMITS, "").strip(), base.networks),
            lease_seconds=_lease(env.get(ENV_LEASE, "").strip()),
            allocator_ttl=_lease(env.get(ENV_LEASE, "").strip()),
        )


def _lease(raw: str) -> float:
    """How long a signer owns a claimed job and the allocator lease (renewed while working);
    a crashed signer's job and nonces come back after this."""
    if not raw:
        return 30.0
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 1.0 <= value <= 600.0:
        raise ConfigError(f"{ENV_LEASE}: seconds from 1 to 600, got {raw!r}")
    return value


def load_limits(
    path_text: str, networks: Mapping[str, Network]
) -> dict[tuple[str, str], SignerLimit]:
    if not path_text:
        return {}
    path = Path(path_text)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{ENV_LIMITS}: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{ENV_LIMITS}: {path} is not valid TOML: {exc}") from None
    limits: dict[tuple[str, str], SignerLimit] = {}
    for network_name, assets in raw.items():
        if not isinstance(assets, dict):
            raise ConfigError(f"{ENV_LIMITS}: [{network_name}] must be a table of assets")
        for symbol, table in assets.items():
            where = f"{ENV_LIMITS}: [{network_name}.{symbol}]"
            if not isinstance(table, dict) or set(table) != {"per_transaction", "per_day"}:
                raise ConfigError(f"{where} needs exactly per_transaction and per_day")
            try:
                per_tx, per_day = int(table["per_transaction"]), int(table["per_day"])
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: amounts are integers in base units") from None
            if not 0 < per_tx <= per_day:
                raise ConfigError(f"{where}: need 0 < per_transaction <= per_day")
            limits[(network_name, symbol)] = SignerLimit(per_tx, per_day)
    return limits
