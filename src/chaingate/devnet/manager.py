"""`chaingate devnet up|down|status`: bring the devnet up idempotently and report it truthfully."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from chaingate.devnet import nodes, postgres
from chaingate.devnet.bitcoin import LitecoinRpc
from chaingate.devnet.config import COMPONENTS, DevnetConfig, DevnetError
from chaingate.devnet.processes import ManagedProcess, Probe
from chaingate.devnet.status import ComponentStatus, DevnetStatus, probe_component
from chaingate.errors import RpcError

log = structlog.get_logger(__name__)

TOKEN_NAME, TOKEN_SYMBOL, TOKEN_DECIMALS = "Nexo", "NEXO", 18
TOKEN_SUPPLY = 1_000_000_000 * 10**TOKEN_DECIMALS
_MATURE_BLOCKS = 101  # coinbase outputs spend after 100 confirmations
_WALLET_NOT_FOUND = -18

Deployer = Callable[[str, str, str, int, int], Awaitable[str]]


@dataclass(frozen=True)
class ComponentUp:
    """One component of `up` is ready: how long it took and whether it was already running."""

    name: str
    seconds: float
    reused: bool
    detail: str = ""


OnReady = Callable[[ComponentUp], None]


def describe(cfg: DevnetConfig, name: str) -> str:
    """What a component is, for a person: ``anvil, chain 31337, port 18545``."""
    if name in ("eth", "bsc"):
        chain = cfg.eth_chain_id if name == "eth" else cfg.bsc_chain_id
        return f"anvil, chain {chain}, port {cfg.ports(name)[0]}"
    if name == "litecoind":
        return f"litecoind regtest (Bitcoin stand-in), port {cfg.ltc_rpc_port}"
    if name == "tron":
        return f"TRON devnet, port {cfg.tron_port}"
    return "PostgreSQL"


@dataclass(frozen=True)
class DevnetState:
    """What a running devnet offers: URLs, chain ids, token addresses, the database DSN."""

    config: DevnetConfig = field(repr=False)  # what `status`/`down` need to find it again
    pids: Mapping[str, int]
    eth_url: str | None = None
    eth_chain_id: int | None = None
    bsc_url: str | None = None
    bsc_chain_id: int | None = None
    eth_token: str | None = None
    bsc_token: str | None = None
    ltc_rpc_url: str | None = field(default=None, repr=False)  # carries RPC credentials
    ltc_wallet: str | None = None
    tron_url: str | None = None
    database_url: str | None = field(default=None, repr=False)  # may carry a password
    database_source: str | None = None  # env | local | cluster


# --- state.json ------------------------------------------------------------------------------
def load_saved(cfg: DevnetConfig) -> dict[str, Any]:
    try:
        saved = json.loads(cfg.state_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return saved if isinstance(saved, dict) else {}


def _save(cfg: DevnetConfig, saved: Mapping[str, Any]) -> None:
    # Write-then-rename: a crash never leaves a half-written state file.
    tmp = cfg.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(saved, indent=2, sort_keys=True))
    os.replace(tmp, cfg.state_file)


# --- EVM -------------------------------------------------------------------------------------
def _load_deployer() -> Deployer | None:
    try:
        from chaingate.devnet.evm_contracts import deploy_dev_token
    except ImportError:  # the EVM helper's module is not merged into this checkout yet
        return None
    deployer: Deployer = deploy_dev_token
    return deployer


async def _has_code(url: str, address: str) -> bool:
    reply = await nodes._post_json(
        url, {"jsonrpc": "2.0", "id": 1, "method": "eth_getCode", "params": [address, "latest"]}
    )
    code = reply.get("result") if isinstance(reply, dict) else None
    return isinstance(code, str) and code not in ("0x", "")


async def _ensure_token(name: str, url: str, saved: str | None) -> str | None:
    """The DevToken on this anvil: the recorded one if its code is there, else a fresh deploy."""
    if saved and await _has_code(url, saved):
        return saved
    deployer = _load_deployer()
    if deployer is None:
        log.warning("devnet_token_deployer_missing", component=name)
        return None
    address = await deployer(url, TOKEN_NAME, TOKEN_SYMBOL, TOKEN_DECIMALS, TOKEN_SUPPLY)
    log.info("devnet_token_deployed", component=name, token=address)
    return address


async def _up_evm(cfg: DevnetConfig, name: str, saved: Mapping[str, Any]) -> dict[str, Any]:
    port, chain_id = (
        (cfg.eth_port, cfg.eth_chain_id) if name == "eth" else (cfg.bsc_port, cfg.bsc_chain_id)
    )
    proc = nodes.anvil_process(cfg, name, port, chain_id)
    url = f"http://{cfg.host}:{port}"
    pid, reused = await proc.ensure_running(nodes.evm_probe(url, chain_id), cfg.ready_timeout)
    token = await _ensure_token(name, url, saved.get("tokens", {}).get(name))
    return {"pid": pid, "token": token, "reused": reused, "detail": f"NEXO token {token}"}


# --- litecoind -------------------------------------------------------------------------------
async def _prepare_wallet(rpc: LitecoinRpc) -> None:
    """Load (or create) the devnet wallet and give it spendable coins."""
    if nodes.LTC_WALLET not in await rpc.call("listwallets", wallet=False):
        try:
            await rpc.call("loadwallet", nodes.LTC_WALLET, wallet=False)
        except RpcError as exc:
            if exc.rpc_code != _WALLET_NOT_FOUND:
                raise
            await rpc.call("createwallet", nodes.LTC_WALLET, wallet=False)
    rpc.wallet = nodes.LTC_WALLET
    balances = await rpc.call("getbalances")
    if balances["mine"]["trusted"] == 0:
        await rpc.mine(_MATURE_BLOCKS)


async def _up_litecoind(cfg: DevnetConfig, saved: Mapping[str, Any]) -> dict[str, Any]:
    proc = nodes.litecoind_process(cfg)
    pid, reused = await proc.ensure_running(nodes.litecoind_probe(cfg), cfg.ready_timeout)
    user, password = nodes.ltc_credentials(cfg)
    async with LitecoinRpc(nodes.ltc_rpc_url(cfg, False), user, password) as rpc:
        await _prepare_wallet(rpc)
    return {"pid": pid, "reused": reused, "detail": "wallet funded"}


# --- TRON and PostgreSQL ---------------------------------------------------------------------
async def _up_tron(cfg: DevnetConfig, saved: Mapping[str, Any]) -> dict[str, Any]:
    if not nodes.tron_available():
        log.warning("devnet_tron_unavailable", module=nodes.TRON_MODULE)
        return {"pid": None, "reused": False, "detail": f"{nodes.TRON_MODULE} not installed"}
    proc = nodes.tron_process(cfg)
    pid, reused = await proc.ensure_running(nodes.tron_probe(cfg), cfg.ready_timeout)
    return {"pid": pid, "reused": reused}


async def _up_postgres(
    cfg: DevnetConfig, saved: Mapping[str, Any], env: Mapping[str, str]
) -> dict[str, Any]:
    external = await postgres.resolve_external(env, cfg)
    if external is not None:
        if not await postgres.answers(external.dsn):
            raise DevnetError(f"the {external.source} database does not answer")
        # Keep "created" across repeated `up`s so the test teardown still drops what it made.
        created = external.created or bool(saved.get("database", {}).get("created"))
        keep = external.dsn if external.source != "env" else None  # env URLs stay in env
        return {
            "pid": None,
            "reused": True,
            "detail": f"{external.source} server"
            + (", database created" if external.created else ""),
            "database": {
                "source": external.source,
                "dsn": keep,
                "created": created,
                "name": cfg.database_name,
            },
        }
    choice, pid = await postgres.start_cluster(cfg)
    return {
        "pid": pid,
        "reused": False,
        "detail": f"throwaway cluster, port {cfg.pg_port}",
        "database": {
            "source": "cluster",
            "dsn": choice.dsn,
            "created": False,
            "name": cfg.database_name,
        },
    }


# --- public API ------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def _exclusive(cfg: DevnetConfig) -> AsyncIterator[None]:
    """One `up` or `down` at a time per devnet folder (two terminals, or CLI and tests)."""
    cfg.root.mkdir(parents=True, exist_ok=True)
    fd = os.open(cfg.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


async def up(
    cfg: DevnetConfig, env: Mapping[str, str] | None = None, on_ready: OnReady | None = None
) -> DevnetState:
    """Start every configured component that is not already running and answering.

    ``on_ready`` hears of each component as it becomes ready (they start concurrently).
    """
    async with _exclusive(cfg):
        cfg.save()  # before anything starts: `down` must find the ports of a half-started devnet
        return await _up(cfg, os.environ if env is None else env, on_ready)


async def _timed(
    name: str, starter: Awaitable[dict[str, Any]], on_ready: OnReady | None
) -> dict[str, Any]:
    started = time.monotonic()
    result = await starter
    if on_ready is not None:
        on_ready(
            ComponentUp(
                name,
                time.monotonic() - started,
                bool(result.get("reused")),
                result.get("detail", ""),
            )
        )
    return result


async def _up(
    cfg: DevnetConfig, environ: Mapping[str, str], on_ready: OnReady | None = None
) -> DevnetState:
    saved = load_saved(cfg)
    starters: dict[str, Awaitable[dict[str, Any]]] = {}
    for name in COMPONENTS:
        if name not in cfg.components:
            continue
        if name in ("eth", "bsc"):
            starters[name] = _up_evm(cfg, name, saved)
        elif name == "litecoind":
            starters[name] = _up_litecoind(cfg, saved)
        elif name == "tron":
            starters[name] = _up_tron(cfg, saved)
        else:
            starters[name] = _up_postgres(cfg, saved, environ)
    results = await asyncio.gather(
        *(_timed(name, starter, on_ready) for name, starter in starters.items()),
        return_exceptions=True,
    )
    outcome = dict(zip(starters, results, strict=True))
    done: dict[str, dict[str, Any]] = {k: v for k, v in outcome.items() if isinstance(v, dict)}
    # Record what did come up even on failure, so `down` and test teardown know about it.
    saved = _record(cfg, saved, done)
    _save(cfg, saved)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        # Started components keep running and their pid files stay: `down` stops them.
        first = failures[0]
        if isinstance(first, DevnetError):
            raise first  # its message already says which component and what to do
        raise DevnetError(f"devnet up failed: {type(first).__name__}: {first}") from first
    state = build_state(cfg, saved, environ)
    log.info("devnet_up", root=str(cfg.root), components=sorted(done))
    return state


def _record(
    cfg: DevnetConfig, saved: dict[str, Any], done: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    tokens = dict(saved.get("tokens", {}))
    for name in ("eth", "bsc"):
        if name in done:
            tokens[name] = done[name]["token"]
    saved["tokens"] = tokens
    saved["pids"] = {name: result["pid"] for name, result in done.items() if result["pid"]}
    if "postgres" in done:
        saved["database"] = done["postgres"]["database"]
    return saved


def build_state(cfg: DevnetConfig, saved: Mapping[str, Any], env: Mapping[str, str]) -> DevnetState:
    chosen = cfg.components
    tokens = saved.get("tokens", {})
    database = saved.get("database") or {}
    dsn = env.get("CHAINGATE_DATABASE_URL") if database.get("source") == "env" else None
    return DevnetState(
        config=cfg,
        pids=dict(saved.get("pids", {})),
        eth_url=cfg.eth_url if "eth" in chosen else None,
        eth_chain_id=cfg.eth_chain_id if "eth" in chosen else None,
        bsc_url=cfg.bsc_url if "bsc" in chosen else None,
        bsc_chain_id=cfg.bsc_chain_id if "bsc" in chosen else None,
        eth_token=tokens.get("eth") if "eth" in chosen else None,
        bsc_token=tokens.get("bsc") if "bsc" in chosen else None,
        ltc_rpc_url=nodes.ltc_rpc_url(cfg, True) if "litecoind" in chosen else None,
        ltc_wallet=nodes.LTC_WALLET if "litecoind" in chosen else None,
        tron_url=cfg.tron_url if "tron" in chosen and nodes.tron_available() else None,
        database_url=dsn or database.get("dsn"),
        database_source=database.get("source"),
    )


def stop_handle(cfg: DevnetConfig, name: str) -> ManagedProcess:
    """Enough of a component's process to find, check and stop it (no side effects)."""
    markers = {
        "eth": "anvil",
        "bsc": "anvil",
        "litecoind": "litecoind",
        "tron": nodes.TRON_MODULE,
        "postgres": "postgres",
    }
    sig = signal.SIGINT if name == "postgres" else signal.SIGTERM
    return ManagedProcess(name, (), cfg.component_dir(name), markers[name], stop_signal=sig)


async def down(cfg: DevnetConfig) -> None:
    """Stop every component that has a pid file under root, whatever the configuration says."""
    handles = [stop_handle(cfg, name) for name in COMPONENTS]
    async with _exclusive(cfg):
        await asyncio.gather(*(h.stop(cfg.stop_timeout) for h in handles))
        cfg.state_file.unlink(missing_ok=True)
    log.info("devnet_down", root=str(cfg.root))


def _probe_for(cfg: DevnetConfig, name: str) -> Probe:
    if name == "eth":
        return nodes.evm_probe(cfg.eth_url, cfg.eth_chain_id)
    if name == "bsc":
        return nodes.evm_probe(cfg.bsc_url, cfg.bsc_chain_id)
    if name == "litecoind":
        return nodes.litecoind_probe(cfg)
    if name == "tron":
        return nodes.tron_probe(cfg)
    return postgres.postgres_probe(cfg)


async def status(cfg: DevnetConfig, env: Mapping[str, str] | None = None) -> DevnetStatus:
    """Per component: running / stopped / dead-pid / not-answering (or external/unavailable)."""
    environ = os.environ if env is None else env
    saved = load_saved(cfg)
    database = saved.get("database") or {}
    checks: list[Awaitable[ComponentStatus]] = []
    for name in COMPONENTS:
        if name not in cfg.components:
            continue
        if name == "postgres" and database.get("source") in ("env", "local"):
            dsn = database.get("dsn") or environ.get("CHAINGATE_DATABASE_URL", "")
            checks.append(postgres.external_status(database["source"], dsn))
            continue
        if name == "tron" and not nodes.tron_available():
            checks.append(_unavailable(name))
            continue
        checks.append(probe_component(name, stop_handle(cfg, name), _probe_for(cfg, name)))
    return DevnetStatus(tuple(await asyncio.gather(*checks)))


async def _unavailable(name: str) -> ComponentStatus:
    return ComponentStatus(name, "unavailable", None, f"{nodes.TRON_MODULE} not installed")
