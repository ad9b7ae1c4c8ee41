"""Where the devnet lives and which ports it listens on."""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaingate.errors import ChaingateError

# Start order matters only for readability of logs; components start concurrently.
COMPONENTS: tuple[str, ...] = ("eth", "bsc", "litecoind", "tron", "postgres")
LOCALHOST = "127.0.0.1"
LITECOIND = "/usr/bin/litecoind"  # Debian's package (SPEC section 11)
# What config.json keeps: where the nodes listen and what runs, never a path of the checkout.
_SAVED_FIELDS = (
    "eth_port", "eth_chain_id", "bsc_port", "bsc_chain_id", "ltc_rpc_port", "ltc_p2p_port",
    "tron_port", "pg_port", "components", "database_name", "force_pg_cluster", "litecoind", "anvil",
)  # fmt: skip


class DevnetError(ChaingateError):
    """Raised when a devnet component cannot be started, reached or stopped."""

    code = "devnet"


def find_project_root() -> Path:
    """The checkout holding package.json (anvil) and pyproject.toml, else the working directory."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "package.json").is_file() and (parent / "pyproject.toml").is_file():
            return parent
    return Path.cwd()


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports the kernel says are free on 127.0.0.1 right now."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOCALHOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass(frozen=True)
class DevnetConfig:
    """One devnet: its folder, ports, chain ids and the components it runs."""

    root: Path
    project_root: Path
    host: str = LOCALHOST
    eth_port: int = 18545
    eth_chain_id: int = 31337
    bsc_port: int = 18546
    bsc_chain_id: int = 31338
    ltc_rpc_port: int = 19443
    ltc_p2p_port: int = 19444
    tron_port: int = 18090
    pg_port: int = 15432
    components: frozenset[str] = field(default_factory=lambda: frozenset(COMPONENTS))
    database_name: str = "chaingate"
    # Skip CHAINGATE_DATABASE_URL and a server on 5432: always run the throwaway cluster.
    force_pg_cluster: bool = False
    ready_timeout: float = 60.0
    stop_timeout: float = 15.0
    litecoind: str = LITECOIND
    anvil: str | None = None  # default: the pinned npm package under <project>/node_modules

    @property
    def anvil_binary(self) -> Path:
        return (
            Path(self.anvil)
            if self.anvil
            else self.project_root / "node_modules" / ".bin" / "anvil"
        )

    def __post_init__(self) -> None:
        if self.host != LOCALHOST:
            raise DevnetError("the devnet listens on 127.0.0.1 only")
        unknown = set(self.components) - set(COMPONENTS)
        if unknown:
            raise DevnetError(f"unknown devnet components: {sorted(unknown)}")

    @classmethod
    def default(
        cls, project_root: Path | None = None, components: Iterable[str] | None = None
    ) -> DevnetConfig:
        """The `make demo` devnet: fixed ports, folder ``<project root>/.devnet``."""
        base = project_root or find_project_root()
        chosen = frozenset(components) if components is not None else frozenset(COMPONENTS)
        return cls(root=base / ".devnet", project_root=base, components=chosen)

    @classmethod
    def for_tests(
        cls,
        root: Path,
        components: Iterable[str] | None = None,
        project_root: Path | None = None,
        force_pg_cluster: bool = False,
    ) -> DevnetConfig:
        """Free ports and a unique database name, so tests never meet a running demo devnet."""
        eth, bsc, ltc_rpc, ltc_p2p, tron, pg = free_ports(6)
        chosen = frozenset(components) if components is not None else frozenset(COMPONENTS)
        return cls(
            root=root,
            project_root=project_root or find_project_root(),
            eth_port=eth,
            bsc_port=bsc,
            ltc_rpc_port=ltc_rpc,
            ltc_p2p_port=ltc_p2p,
            tron_port=tron,
            pg_port=pg,
            components=chosen,
            database_name=f"chaingate_test_{secrets.token_hex(4)}",
            force_pg_cluster=force_pg_cluster,
        )

    @classmethod
    def load(cls, root: Path, project_root: Path | None = None) -> DevnetConfig:
        """The devnet under ``root`` as its last `up` recorded it (``config.json``: ports,
        chain ids, components); fixed `make demo` ports when it has none yet."""
        base = project_root or find_project_root()
        path = root / "config.json"
        try:
            saved = json.loads(path.read_text())
        except FileNotFoundError:
            return cls(root=root, project_root=base)
        except (OSError, ValueError) as exc:
            raise DevnetError(
                f"{path}: unreadable ({type(exc).__name__})",
                hint=f"fix or delete {path} (the next `chaingate devnet up` rewrites it)",
            ) from None
        if not isinstance(saved, dict) or set(saved) - set(_SAVED_FIELDS):
            raise DevnetError(
                f"{path}: unexpected content",
                hint=f"fix or delete {path} (the next `chaingate devnet up` rewrites it)",
            )
        values: dict[str, Any] = dict(saved)
        if "components" in values:
            values["components"] = frozenset(values["components"])
        try:
            return cls(root=root, project_root=base, **values)
        except TypeError as exc:
            raise DevnetError(f"{path}: {exc}", hint=f"fix or delete {path}") from None

    def save(self) -> None:
        """Record ports and components in ``<root>/config.json`` for `down`, `status`, `demo`."""
        self.root.mkdir(parents=True, exist_ok=True)
        values = {name: getattr(self, name) for name in _SAVED_FIELDS}
        values["components"] = sorted(self.components)
        tmp = self.config_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(values, indent=2, sort_keys=True))
        os.replace(tmp, self.config_file)

    @property
    def config_file(self) -> Path:
        return self.root / "config.json"

    def ports(self, name: str) -> tuple[int, ...]:
        """The TCP ports component ``name`` listens on."""
        return {
            "eth": (self.eth_port,),
            "bsc": (self.bsc_port,),
            "litecoind": (self.ltc_rpc_port, self.ltc_p2p_port),
            "tron": (self.tron_port,),
            "postgres": (self.pg_port,),
        }[name]

    def component_dir(self, name: str) -> Path:
        return self.root / name

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def eth_url(self) -> str:
        return f"http://{self.host}:{self.eth_port}"

    @property
    def bsc_url(self) -> str:
        return f"http://{self.host}:{self.bsc_port}"

    @property
    def tron_url(self) -> str:
        return f"http://{self.host}:{self.tron_port}"
