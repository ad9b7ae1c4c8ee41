"""Which PostgreSQL the devnet uses, and the throwaway cluster when there is none.

Order (SPEC section 11): ``CHAINGATE_DATABASE_URL`` if set; else a server answering on
127.0.0.1:5432 (database created if missing); else a cluster initialised under
``<root>/postgres`` from the machine's PostgreSQL binaries, trust auth, TCP on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog

from chaingate.devnet.config import DevnetConfig, DevnetError
from chaingate.devnet.processes import ManagedProcess, Probe
from chaingate.devnet.status import ComponentStatus

log = structlog.get_logger(__name__)

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432"
_CONNECT_TIMEOUT = 3.0
_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class DatabaseChoice:
    """The DSN to use and where it came from: env, local server, or our own cluster."""

    dsn: str = field(repr=False)  # an operator's URL may carry a password
    source: str  # "env" | "local" | "cluster"
    created: bool = False  # we created the database on a server we do not own


async def answers(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=_CONNECT_TIMEOUT)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


async def ensure_database(server_dsn: str, name: str) -> bool:
    """Create database ``name`` on the server unless it exists; True if it was created."""
    if not _NAME_RE.match(name):
        raise DevnetError(f"invalid database name {name!r}")
    conn = await asyncpg.connect(f"{server_dsn}/postgres", timeout=_CONNECT_TIMEOUT)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        await conn.execute(f'CREATE DATABASE "{name}"')
        return True
    finally:
        await conn.close()


async def drop_database(server_dsn: str, name: str) -> None:
    if not _NAME_RE.match(name):
        raise DevnetError(f"invalid database name {name!r}")
    conn = await asyncpg.connect(f"{server_dsn}/postgres", timeout=_CONNECT_TIMEOUT)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def server_of(dsn: str) -> str:
    """``postgresql://user@host:port`` of a DSN naming a database (what the helpers above take)."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="", query="", fragment=""))


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def fresh_database(server_dsn: str, name: str, *, migrate: bool = False) -> str:
    """Drop ``name`` if it exists, create it empty (migrated if asked); its DSN."""
    await drop_database(server_dsn, name)
    await ensure_database(server_dsn, name)
    dsn = f"{server_dsn}/{name}"
    if migrate:
        from chaingate.store import apply_migrations

        conn = await asyncpg.connect(dsn, timeout=_CONNECT_TIMEOUT)
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()
    return dsn


@asynccontextmanager
async def scratch_database(
    server_dsn: str, prefix: str, *, migrate: bool = False
) -> AsyncIterator[str]:
    """A uniquely named database for a test or benchmark run, dropped on exit."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    try:
        yield await fresh_database(server_dsn, name, migrate=migrate)
    finally:
        await drop_database(server_dsn, name)


async def resolve_external(env: Mapping[str, str], cfg: DevnetConfig) -> DatabaseChoice | None:
    """The database outside the devnet to use, or None when the throwaway cluster is needed."""
    if cfg.force_pg_cluster:
        return None
    url = env.get("CHAINGATE_DATABASE_URL")
    if url:
        return DatabaseChoice(dsn=url, source="env")
    if await answers(f"{LOCAL_SERVER}/postgres"):
        created = await ensure_database(LOCAL_SERVER, cfg.database_name)
        return DatabaseChoice(f"{LOCAL_SERVER}/{cfg.database_name}", "local", created)
    return None


def cluster_server_dsn(cfg: DevnetConfig) -> str:
    return f"postgresql://postgres@{cfg.host}:{cfg.pg_port}"


def find_bindir() -> Path:
    """The directory with initdb and postgres: pg_config's answer, else the newest in /usr/lib."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run(  # noqa: S603 - fixed argv
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        candidates.append(Path(out.stdout.strip()))
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(versions)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "postgres").exists():
            return bindir
    raise DevnetError("no PostgreSQL server binaries found (install postgresql)")


def _server_user() -> tuple[int, int] | None:
    """PostgreSQL refuses to run as root: as root, run the cluster as the 'postgres' user."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise DevnetError("running as root needs a 'postgres' system user for the cluster") from exc
    return entry.pw_uid, entry.pw_gid


def _reachable_by(path: Path, uid: int, gid: int) -> bool:
    """Can ``uid`` traverse every directory above ``path``?"""
    for parent in path.resolve().parents:
        st = parent.stat()
        bit = 0o100 if st.st_uid == uid else 0o010 if st.st_gid == gid else 0o001
        if not st.st_mode & bit:
            return False
    return True


def cluster_datadir(cfg: DevnetConfig) -> Path:
    """``<root>/postgres/data``, or (as root, under a private tree) a linked folder in /tmp."""
    workdir = cfg.component_dir("postgres")
    link = workdir / "data"
    if link.is_symlink() or link.exists():
        return link.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    owner = _server_user()
    if owner is None:
        return link
    if _reachable_by(link, *owner):
        link.mkdir(mode=0o700)
        os.chown(link, *owner)
        return link
    # pytest's tmp dirs are 0700 root: the postgres user could not reach a cluster there.
    outside = Path(tempfile.mkdtemp(prefix="chaingate-pg-"))
    os.chown(outside, *owner)
    link.symlink_to(outside)
    return outside


def remove_cluster(cfg: DevnetConfig) -> None:
    """Delete the cluster's files, including a folder outside root that ``data`` links to."""
    link = cfg.component_dir("postgres") / "data"
    if link.is_symlink():
        shutil.rmtree(link.resolve(), ignore_errors=True)
        link.unlink()


def init_cluster(cfg: DevnetConfig) -> Path:
    datadir = cluster_datadir(cfg)
    if (datadir / "PG_VERSION").exists():
        return datadir
    owner = _server_user()
    argv = [str(find_bindir() / "initdb"), "-D", str(datadir), "-U", "postgres"]
    argv += ["--auth=trust", "-E", "UTF8", "--no-instructions"]
    out = subprocess.run(  # noqa: S603 - argv built here
        argv,
        capture_output=True,
        text=True,
        check=False,
        user=owner[0] if owner else None,
        group=owner[1] if owner else None,
        cwd="/",
    )
    if out.returncode != 0:
        raise DevnetError(f"initdb failed for {datadir}: {out.stderr.strip()[-1000:]}")
    log.info("devnet_postgres_initialised", datadir=str(datadir))
    return datadir


def postgres_process(cfg: DevnetConfig, datadir: Path) -> ManagedProcess:
    owner = _server_user()
    postgres = str(find_bindir() / "postgres")
    argv = [postgres, "-D", str(datadir), "-p", str(cfg.pg_port)]
    # TCP on 127.0.0.1 only; no unix socket (its path length and directory are a nuisance).
    argv += ["-c", f"listen_addresses={cfg.host}", "-c", "unix_socket_directories="]
    argv += ["-c", "fsync=off"]  # a throwaway cluster; speed over durability
    return ManagedProcess(
        name="postgres",
        argv=argv,
        workdir=cfg.component_dir("postgres"),
        marker="postgres",  # children retitle themselves "postgres: ..."
        stop_signal=signal.SIGINT,  # "fast" shutdown: disconnect clients, stop at once
        user=owner[0] if owner else None,
        group=owner[1] if owner else None,
        ports=cfg.ports("postgres"),
    )


def postgres_probe(cfg: DevnetConfig) -> Probe:
    async def probe() -> bool:
        return await answers(f"{cluster_server_dsn(cfg)}/postgres")

    return probe


async def start_cluster(cfg: DevnetConfig) -> tuple[DatabaseChoice, int]:
    """Run (or reuse) the throwaway cluster; its DSN and the postmaster pid."""
    datadir = await asyncio.to_thread(init_cluster, cfg)
    proc = postgres_process(cfg, datadir)
    pid, _ = await proc.ensure_running(postgres_probe(cfg), cfg.ready_timeout)
    await ensure_database(cluster_server_dsn(cfg), cfg.database_name)
    return DatabaseChoice(f"{cluster_server_dsn(cfg)}/{cfg.database_name}", "cluster"), pid


async def resolve_database(
    env: Mapping[str, str], cfg: DevnetConfig, force_cluster: bool = False
) -> DatabaseChoice:
    """The database the devnet uses, starting the throwaway cluster only when none answers."""
    if not force_cluster:
        external = await resolve_external(env, cfg)
        if external is not None:
            return external
    choice, _ = await start_cluster(cfg)
    return choice


async def external_status(source: str, dsn: str) -> ComponentStatus:
    """A database the devnet does not run: report whether it answers, never its DSN."""
    if dsn and await answers(dsn):
        return ComponentStatus("postgres", "external", None, f"{source} server answers")
    return ComponentStatus("postgres", "not-answering", None, f"{source} server does not answer")
