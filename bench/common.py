"""What every measurement needs: a throwaway database, a clock, peak memory, a small RPC client.

Peak memory is the process's resident set high-water mark (VmHWM). Linux lets a process reset
its own mark (``echo 5 > /proc/self/clear_refs``), so each phase gets its own peak instead of
the whole run's; where that is not allowed the run-wide ``ru_maxrss`` is reported instead and
the result says so.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import os
import platform
import re
import resource
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from chaingate.devnet import postgres
from chaingate.devnet.manager import DevnetState
from chaingate.devnet.testing import running_devnet

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


# --- memory -------------------------------------------------------------------------------------
def _status_kib(field_name: str) -> int | None:
    try:
        text = _STATUS.read_text()
    except OSError:
        return None
    match = re.search(rf"^{field_name}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def rss_mib() -> float:
    """Resident set size now."""
    kib = _status_kib("VmRSS")
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024


def _reset_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


@dataclass
class Memory:
    """RSS before a phase, its peak during the phase, and RSS after it."""

    before: float = 0.0
    peak: float = 0.0
    after: float = 0.0
    phase_peak: bool = True  # False: ``peak`` is the whole process's maximum so far

    @property
    def peak_growth(self) -> float:
        return self.peak - self.before


@contextmanager
def measure_memory() -> Iterator[Memory]:
    gc.collect()
    memory = Memory(before=rss_mib())
    memory.phase_peak = _reset_peak()
    try:
        yield memory
    finally:
        hwm = _status_kib("VmHWM") if memory.phase_peak else None
        if hwm is None:
            hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        memory.peak = hwm / 1024
        memory.after = rss_mib()


# --- time ---------------------------------------------------------------------------------------
@dataclass
class Clock:
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0


@contextmanager
def timed() -> Iterator[Clock]:
    clock = Clock()
    try:
        yield clock
    finally:
        clock.seconds = time.perf_counter() - clock.started


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("nan")


# --- database -----------------------------------------------------------------------------------
@asynccontextmanager
async def throwaway_database(admin_dsn: str, *, migrate: bool = True) -> AsyncIterator[str]:
    """A new database ``cg_bench_<hex>`` (migrated unless told not to), dropped on exit."""
    server = postgres.server_of(admin_dsn)
    async with postgres.scratch_database(server, "cg_bench", migrate=migrate) as dsn:
        yield dsn


# --- nodes -------------------------------------------------------------------------------------
@asynccontextmanager
async def devnet(tmp: Path, name: str, components: Sequence[str]) -> AsyncIterator[DevnetState]:
    """``running_devnet`` (it retries a start that lost a port) under ``tmp / name``."""
    async with running_devnet(tmp / name, components=components) as state:
        yield state


# --- a bare JSON-RPC client for filling the chains (not what is measured) ----------------------
class RpcError(Exception):
    """Raised when a node answers a set-up call with an error object."""


class BareRpc:
    """JSON-RPC over one aiohttp session; amounts decoded as Decimal, never float."""

    def __init__(self, url: str, *, version: str = "2.0", timeout: float = 120.0) -> None:
        self.url = url
        self.version = version
        self._ids = itertools.count(1)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> BareRpc:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def _post(self, body: Any, path: str = "") -> Any:
        assert self._session is not None, "BareRpc used outside 'async with'"
        data = json.dumps(body, default=str)
        headers = {"Content-Type": "application/json"}
        async with self._session.post(self.url + path, data=data, headers=headers) as resp:
            return json.loads(await resp.text(), parse_float=Decimal)

    async def call(self, method: str, *params: Any, path: str = "") -> Any:
        return (await self.batch([(method, list(params))], path=path))[0]

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]], path: str = "") -> list[Any]:
        if not calls:
            return []
        body = [
            {"jsonrpc": self.version, "id": next(self._ids), "method": m, "params": list(p)}
            for m, p in calls
        ]
        replies = await self._post(body, path)
        if not isinstance(replies, list):
            raise RpcError(f"batch answered {str(replies)[:200]}")
        by_id = {r["id"]: r for r in replies}
        results = []
        for request in body:
            reply = by_id[request["id"]]
            if reply.get("error"):
                raise RpcError(f"{request['method']}: {reply['error']}")
            results.append(reply["result"])
        return results


# --- machine ------------------------------------------------------------------------------------
def machine_info() -> dict[str, str]:
    cpu = "unknown"
    with suppress(OSError, StopIteration):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(x for x in lines if x.startswith("model name")).split(":", 1)[1].strip()
    mem_kib = 0
    with suppress(OSError, IndexError):
        mem_kib = int(re.findall(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[0])
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def load_average() -> str:
    """1-minute load: other work on the machine (e.g. a test run) skews every number."""
    return f"{os.getloadavg()[0]:.2f}"


@asynccontextmanager
async def lease_renewed(keeper: Any) -> AsyncIterator[None]:
    """Renew a watcher's lease in the background while a bench drives ``Watcher.step()`` by
    hand, as ``Watcher.run`` does (a step on a loaded machine can outlast the lease)."""
    stop = asyncio.Event()
    task = asyncio.create_task(keeper.keep(stop))
    try:
        yield
    finally:
        stop.set()
        await task


# --- processes of their own (as in production) -------------------------------------------------
def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child Python process: this checkout's ``src`` first on the path (a
    worktree's venv may be installed against another checkout)."""
    import chaingate

    src = str(Path(chaingate.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


@asynccontextmanager
async def child_process(
    argv: Sequence[str], env: dict[str, str], log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``argv`` running with stdout and stderr in ``log``; SIGTERM (then SIGKILL) on exit."""
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), timeout=20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@asynccontextmanager
async def ledger_process(ledger_dsn: str, secret: bytes, log: Path) -> AsyncIterator[str]:
    """The reference ledger in its own process (``python -m chaingate.ledger.reference``), as
    production runs a ledger beside the gateway; yields its base URL once it answers."""
    from chaingate.devnet.config import free_ports

    port = free_ports(1)[0]
    env = child_env(
        CHAINGATE_LEDGER_DATABASE_URL=ledger_dsn, CHAINGATE_LEDGER_SECRET=secret.decode()
    )
    argv = [sys.executable, "-m", "chaingate.ledger.reference", "--port", str(port)]
    async with child_process(argv, env, log) as proc:
        # aiohttp listens only once the app started (its database pool and schema are ready).
        for _ in range(300):
            if proc.returncode is not None:
                raise RuntimeError(f"the reference ledger exited ({proc.returncode}); see {log}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            break
        else:
            raise RuntimeError("the reference ledger did not listen within 30 s")
        yield f"http://127.0.0.1:{port}"
