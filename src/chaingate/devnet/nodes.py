"""The node processes of the devnet: two anvils, litecoind regtest and the TRON devnet server.

Each function returns the ``ManagedProcess`` that runs a component and a probe that says whether
the service behind it really answers (the right chain id, an authenticated RPC reply, HTTP 200).
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import aiohttp

import chaingate
from chaingate.devnet.config import DevnetConfig, DevnetError
from chaingate.devnet.processes import ManagedProcess, Probe

_PROBE_TIMEOUT = aiohttp.ClientTimeout(total=2)
LTC_WALLET = "devnet"
TRON_MODULE = "chaingate.devnet.tron_node"
# MWEB's BIP9 deployment starts in 2020 on regtest, so the miner's own signalling activates it
# at height 432; from then on litecoind 0.21.2 cannot mine a block (CreateNewBlock fails with
# bad-txns-vin-empty, its HogEx transaction is missing). A start time in 2100 keeps it off.
_MWEB_OFF = "-vbparams=mweb:4102444800:4102444801"


async def _post_json(url: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    """The decoded JSON answer, or None if the service did not answer 200 with JSON."""
    try:
        async with (
            aiohttp.ClientSession(timeout=_PROBE_TIMEOUT, headers=headers) as session,
            session.post(url, json=body) as resp,
        ):
            if resp.status != 200:
                return None
            return await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError, ValueError):
        return None


# --- anvil ---------------------------------------------------------------------------------
def anvil_process(cfg: DevnetConfig, name: str, port: int, chain_id: int) -> ManagedProcess:
    binary = cfg.anvil_binary
    if not binary.exists():
        raise DevnetError(
            f"anvil is not installed ({binary} is missing)",
            hint=f"run `make setup` in {cfg.project_root} (npm installs the pinned "
            "@foundry-rs/anvil)",
        )
    argv = [str(binary), "--host", cfg.host, "--port", str(port), "--chain-id", str(chain_id)]
    argv.append("--silent")
    return ManagedProcess(
        name=name, argv=argv, workdir=cfg.component_dir(name), marker="anvil", ports=(port,)
    )


def evm_probe(url: str, chain_id: int) -> Probe:
    async def probe() -> bool:
        reply = await _post_json(url, {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
        return isinstance(reply, dict) and reply.get("result") == hex(chain_id)

    return probe


# --- litecoind -----------------------------------------------------------------------------
def ltc_datadir(cfg: DevnetConfig) -> Path:
    return cfg.component_dir("litecoind") / "data"


def ltc_credentials(cfg: DevnetConfig) -> tuple[str, str]:
    """(user, password) for litecoind's RPC, created once in a 0600 file and never logged."""
    path = cfg.component_dir("litecoind") / "rpc-credentials.json"
    if path.exists():
        stored = json.loads(path.read_text())
        return str(stored["user"]), str(stored["password"])
    path.parent.mkdir(parents=True, exist_ok=True)
    user, password = "chaingate", secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"user": user, "password": password}, out)
    return user, password


def _write_ltc_conf(cfg: DevnetConfig) -> Path:
    # Credentials go in a 0600 config file, not argv, so `ps` never shows them.
    user, password = ltc_credentials(cfg)
    datadir = ltc_datadir(cfg)
    datadir.mkdir(parents=True, exist_ok=True)
    conf = datadir / "litecoin.conf"
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"regtest=1\n[regtest]\nrpcuser={user}\nrpcpassword={password}\n")
    return conf


def litecoind_process(cfg: DevnetConfig) -> ManagedProcess:
    if not Path(cfg.litecoind).exists():
        raise DevnetError(
            f"litecoind is not installed ({cfg.litecoind} is missing)",
            hint="run `make setup`, or `apt-get install litecoind` (Debian's package)",
        )
    conf = _write_ltc_conf(cfg)
    datadir = ltc_datadir(cfg)
    argv = [
        cfg.litecoind,
        f"-conf={conf}",
        f"-datadir={datadir}",
        "-regtest",
        "-server",
        "-listen=0",
        f"-rpcbind={cfg.host}",
        f"-rpcallowip={cfg.host}",
        f"-rpcport={cfg.ltc_rpc_port}",
        f"-port={cfg.ltc_p2p_port}",
        "-fallbackfee=0.0001",
        "-txindex=1",
        "-printtoconsole=0",
        _MWEB_OFF,
        # Litecoin turns BIP125 replacement off by default; Bitcoin Core has it on, and the
        # watcher's "a replaced transaction never counts" rule needs replacements to happen.
        "-mempoolreplacement=1",
    ]
    return ManagedProcess(
        name="litecoind",
        argv=argv,
        workdir=cfg.component_dir("litecoind"),
        marker="litecoind",
        extra_log_hint=datadir / "regtest" / "debug.log",
        ports=cfg.ports("litecoind"),
    )


def ltc_rpc_url(cfg: DevnetConfig, with_credentials: bool) -> str:
    if not with_credentials:
        return f"http://{cfg.host}:{cfg.ltc_rpc_port}"
    user, password = ltc_credentials(cfg)
    return f"http://{user}:{password}@{cfg.host}:{cfg.ltc_rpc_port}"


def litecoind_probe(cfg: DevnetConfig) -> Probe:
    url = ltc_rpc_url(cfg, with_credentials=False)

    async def probe() -> bool:
        headers = {"Authorization": aiohttp.encode_basic_auth(*ltc_credentials(cfg))}
        body = {"jsonrpc": "1.0", "id": 1, "method": "getblockchaininfo", "params": []}
        reply = await _post_json(url, body, headers=headers)
        return isinstance(reply, dict) and (reply.get("result") or {}).get("chain") == "regtest"

    return probe


# --- TRON devnet ---------------------------------------------------------------------------
def tron_available() -> bool:
    """The TRON devnet server ships in the package once its helper's work is merged."""
    return importlib.util.find_spec(TRON_MODULE) is not None


def tron_process(cfg: DevnetConfig) -> ManagedProcess:
    workdir = cfg.component_dir("tron")
    argv = [sys.executable, "-m", TRON_MODULE, "--host", cfg.host, "--port", str(cfg.tron_port)]
    argv += ["--data-dir", str(workdir / "data")]
    # The child must import this very checkout of chaingate, installed or not.
    package_parent = str(Path(chaingate.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    return ManagedProcess(
        name="tron",
        argv=argv,
        workdir=workdir,
        marker=TRON_MODULE,
        env=env,
        ports=cfg.ports("tron"),
    )


def tron_probe(cfg: DevnetConfig) -> Probe:
    async def probe() -> bool:
        return await _post_json(f"{cfg.tron_url}/wallet/getnowblock", {}) is not None

    return probe
