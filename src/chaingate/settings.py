"""One settings object, built in ``main`` from the chains/ registry and the environment.

Nothing here runs at import time; ``Settings.from_env`` is called once and passed down.
Every bad value becomes a one-line ConfigError naming the variable and what is wrong; secrets
(tokens, the ledger secret, endpoint URLs, xpubs) are never echoed.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from chaingate.domain import Network
from chaingate.domain.approvals import SEAL_KEY_ENV, parse_seal_key
from chaingate.errors import ConfigError, ValidationError
from chaingate.registry import load_registry

ROLES = frozenset({"service", "ops_maker", "ops_approver", "viewer"})
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    roles: frozenset[str]


@dataclass(frozen=True)
class Settings:
    database_url: str = field(repr=False)
    networks: dict[str, Network]
    chains_dir: Path
    api_tokens: dict[str, Principal] = field(default_factory=dict, repr=False)
    ledger_url: str | None = None
    ledger_secret: bytes = field(default=b"", repr=False)
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    # Alerts are pushed here by the dispatcher role (alerting/pusher.py); the URL may carry the
    # receiver's token. With a secret, each push is HMAC-signed like a ledger request.
    alert_webhook_url: str | None = field(default=None, repr=False)
    alert_webhook_secret: bytes = field(default=b"", repr=False)
    # How long a dispatcher owns the outbox rows it claimed; a crashed dispatcher's rows are
    # delivered by another (or the restarted one) after this, with the same idempotency keys.
    outbox_lease_seconds: float = 30.0
    # Withdrawal approvals (SPEC 7): how many distinct approvers a batch needs, and the HMAC key
    # that seals each approval (held by the API and the signer, never by the database).
    approval_quorum: int = 2
    approval_seal_key: bytes = field(default=b"", repr=False)
    # Fernet key that encrypts the ops console's session cookie; without one the console is
    # not served (its pages answer 503 saying which variable to set).
    console_session_key: str | None = field(default=None, repr=False)
    # How long a network's watcher lease lasts without renewal: a killed leader's network is
    # taken over by a standby after at most this long (store/leases.py).
    watcher_lease_seconds: float = 30.0
    # Where each network's deposit addresses start on a database that has issued none
    # (CHAINGATE_<NETWORK>_ADDRESS_START_INDEX; the address-index guard, api/issuance.py).
    address_start: dict[str, int] = field(default_factory=dict)
    log_format: str = "auto"  # auto | json | console
    log_level: str = "info"

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, require_database: bool = True) -> Settings:
        chains_dir = Path(env.get("CHAINGATE_CHAINS_DIR", "") or PROJECT_ROOT / "chains" / "devnet")
        only = [n.strip() for n in env.get("CHAINGATE_NETWORKS", "").split(",") if n.strip()]
        networks = load_registry(chains_dir, env, only or None)
        database_url = env.get("CHAINGATE_DATABASE_URL", "").strip()
        if require_database and not database_url:
            raise ConfigError("CHAINGATE_DATABASE_URL: not set (postgresql://user@host:port/db)")
        if database_url and not database_url.startswith(("postgresql://", "postgres://")):
            raise ConfigError("CHAINGATE_DATABASE_URL: must start with postgresql://")
        ledger_url = _ledger_url(env.get("CHAINGATE_LEDGER_URL", "").strip())
        secret = env.get("CHAINGATE_LEDGER_SECRET", "")
        if ledger_url and len(secret) < 16:
            raise ConfigError("CHAINGATE_LEDGER_SECRET: required with a ledger URL, 16+ characters")
        webhook_secret = env.get("CHAINGATE_ALERT_WEBHOOK_SECRET", "")
        if webhook_secret and len(webhook_secret) < 16:
            raise ConfigError("CHAINGATE_ALERT_WEBHOOK_SECRET: 16+ characters when set")
        return cls(
            database_url=database_url,
            networks=networks,
            chains_dir=chains_dir,
            api_tokens=parse_api_tokens(env.get("CHAINGATE_API_TOKENS", "")),
            ledger_url=ledger_url,
            ledger_secret=secret.encode(),
            api_host=env.get("CHAINGATE_API_HOST", "127.0.0.1"),
            api_port=_port(env.get("CHAINGATE_API_PORT", "8080"), "CHAINGATE_API_PORT"),
            outbox_lease_seconds=_seconds(env, "CHAINGATE_OUTBOX_LEASE_SECONDS", 30.0),
            watcher_lease_seconds=_seconds(env, "CHAINGATE_WATCHER_LEASE_SECONDS", 30.0),
            alert_webhook_url=_webhook_url(env.get("CHAINGATE_ALERT_WEBHOOK_URL", "").strip()),
            alert_webhook_secret=webhook_secret.encode(),
            approval_quorum=_quorum(env.get("CHAINGATE_APPROVAL_QUORUM", "").strip()),
            approval_seal_key=_seal_key(env.get(SEAL_KEY_ENV, "")),
            console_session_key=console_session_key(env),
            address_start=_address_starts(env, networks),
            log_format=_choice(env, "CHAINGATE_LOG_FORMAT", "auto", {"auto", "json", "console"}),
            log_level=_choice(
                env, "CHAINGATE_LOG_LEVEL", "info", {"debug", "info", "warning", "error"}
            ),
        )


def parse_api_tokens(raw: str) -> dict[str, Principal]:
    """``CHAINGATE_API_TOKENS``: JSON {"<token>": {"principal": "...", "roles": [...]}}."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"CHAINGATE_API_TOKENS: not valid JSON ({exc.msg} at {exc.pos})"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError('CHAINGATE_API_TOKENS: expected {"<token>": {"principal", "roles"}}')
    tokens: dict[str, Principal] = {}
    for n, (token, spec) in enumerate(data.items()):
        where = f"CHAINGATE_API_TOKENS: entry {n + 1}"  # never the token itself
        if len(token) < 16:
            raise ConfigError(f"{where}: token shorter than 16 characters")
        if not isinstance(spec, dict) or not isinstance(spec.get("principal"), str):
            raise ConfigError(f"{where}: needs a 'principal' string")
        roles = spec.get("roles")
        if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
            raise ConfigError(f"{where}: 'roles' must be a non-empty list of strings")
        bad = sorted(set(roles) - ROLES)
        if bad:
            raise ConfigError(
                f"{where}: unknown role {bad[0]!r} (one of {', '.join(sorted(ROLES))})"
            )
        tokens[token] = Principal(spec["principal"], frozenset(roles))
    return tokens


def console_session_key(env: Mapping[str, str]) -> str | None:
    """``CHAINGATE_CONSOLE_SESSION_KEY``: a Fernet key (32 bytes, url-safe base64), or unset."""
    raw = env.get("CHAINGATE_CONSOLE_SESSION_KEY", "").strip()
    if not raw:
        return None
    from cryptography.fernet import Fernet

    try:
        Fernet(raw)
    except ValueError:
        raise ConfigError(
            "CHAINGATE_CONSOLE_SESSION_KEY: expected a Fernet key (32 bytes, url-safe base64); "
            "make one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'"
        ) from None
    return raw


def _webhook_url(raw: str) -> str | None:
    """``CHAINGATE_ALERT_WEBHOOK_URL``: an http(s) URL with a host, or unset. Never echoed: its
    path or query may hold the receiver's token."""
    if not raw:
        return None
    try:
        parts = urlsplit(raw)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        valid = False
    if not valid or any(c.isspace() for c in raw):
        raise ConfigError(
            "CHAINGATE_ALERT_WEBHOOK_URL: expected an http:// or https:// URL with a host"
        )
    return raw


def _quorum(raw: str) -> int:
    """``CHAINGATE_APPROVAL_QUORUM``: distinct approvers per batch (the maker never counts)."""
    if not raw:
        return 2
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 10:
        raise ConfigError(
            f"CHAINGATE_APPROVAL_QUORUM: expected an integer from 1 to 10, got {raw!r}"
        )
    return int(raw)


def _seal_key(raw: str) -> bytes:
    """``CHAINGATE_APPROVAL_SEAL_KEY``: optional here (only approving and signing need it);
    when set, long enough to be a key. Never echoed."""
    if not raw.strip():
        return b""
    try:
        return parse_seal_key(raw)
    except ValidationError as exc:
        raise ConfigError(str(exc)) from None


def address_start_variable(network: str) -> str:
    """The environment variable that sets where ``network``'s deposit addresses start."""
    return f"CHAINGATE_{network.upper().replace('-', '_')}_ADDRESS_START_INDEX"


def _address_starts(env: Mapping[str, str], networks: Mapping[str, Network]) -> dict[str, int]:
    starts: dict[str, int] = {}
    for name in networks:
        variable = address_start_variable(name)
        raw = env.get(variable, "").strip()
        if not raw:
            continue
        # BIP32 non-hardened child indexes end at 2^31 - 1.
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 10 and int(raw) < 2**31):
            raise ConfigError(f"{variable}: expected an address index from 0 to 2147483647")
        starts[name] = int(raw)
    return starts


def _ledger_url(raw: str) -> str | None:
    """``CHAINGATE_LEDGER_URL``: https, or http only to this host (127.0.0.0/8, ::1, localhost).

    Credits travel with an HMAC but in the clear over http: anyone on the path reads who was
    credited what. A non-loopback http URL is a configuration mistake, refused at startup."""
    if not raw:
        return None
    try:
        parts = urlsplit(raw)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        host = ""
    if parts.scheme not in ("http", "https") or not host or any(c.isspace() for c in raw):
        raise ConfigError("CHAINGATE_LEDGER_URL: expected an https:// URL with a host")
    if parts.scheme == "http" and not _loopback(host):
        raise ConfigError(
            f"CHAINGATE_LEDGER_URL: http:// is allowed only to this host (127.0.0.1, ::1, "
            f"localhost); {host} must be reached over https://"
        )
    return raw


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _port(raw: str, name: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(f"{name}: expected a TCP port number, got {raw!r}")
    return int(raw)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise ConfigError(f"{name}: expected seconds between 0 and 3600, got {raw!r}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, allowed: set[str]) -> str:
    value = env.get(name, default).strip().lower() or default
    if value not in allowed:
        raise ConfigError(f"{name}: expected one of {', '.join(sorted(allowed))}, got {value!r}")
    return value
