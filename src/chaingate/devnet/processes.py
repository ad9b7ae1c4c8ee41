"""A detached node process with its own log file and pid file, checked and stopped truthfully.

Each process starts in a new session, so it survives the command that started it and its
whole process group (a wrapper such as node_modules/.bin/anvil and the binary it spawns) can be
signalled at once. A pid counts as ours only while /proc says it is alive, not a zombie, and
running the program we started: a recycled pid must never look like a running node.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from chaingate.devnet.config import LOCALHOST, DevnetError
from chaingate.devnet.ports import port_free, port_owner

log = structlog.get_logger(__name__)

Probe = Callable[[], Awaitable[bool]]
_POLL_SECONDS = 0.1
_LOG_TAIL_CHARS = 2000
_PORT_GRACE = 3.0  # seconds a killed process may take to let go of its port


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, process group) of ``pid``, or None when it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name sits in parentheses and may itself contain spaces or parentheses.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[2])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def _reap(pid: int) -> None:
    """Collect the exit status of a child we started, so it stops being a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def process_running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (reaped if it is)."""
    stat = _proc_stat(pid)
    if stat is None:
        return False
    if stat[0] in ("Z", "X"):
        _reap(pid)
        return False
    return True


def pid_alive(pid: int, marker: str) -> bool:
    """True when ``pid`` runs, is not a zombie, and its command line contains ``marker``."""
    stat = _proc_stat(pid)
    if stat is None:
        return False
    if stat[0] in ("Z", "X"):
        _reap(pid)
        return False
    return marker in _cmdline(pid)


def group_members(pgid: int, marker: str) -> list[int]:
    """Live processes of group ``pgid`` that run our program (orphans of a killed leader)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        stat = _proc_stat(pid)
        if stat and stat[1] == pgid and stat[0] not in ("Z", "X") and marker in _cmdline(pid):
            members.append(pid)
    return members


@dataclass(frozen=True)
class ManagedProcess:
    """How to run one component; files live in ``workdir``."""

    name: str
    argv: Sequence[str]
    workdir: Path
    marker: str  # a string the command line of every process of ours contains
    stop_signal: signal.Signals = signal.SIGTERM
    env: Mapping[str, str] | None = None
    user: int | None = None  # run as this uid (PostgreSQL refuses to run as root)
    group: int | None = None
    extra_log_hint: Path | None = field(default=None)
    ports: tuple[int, ...] = ()  # must be free before it starts (see devnet/ports.py)

    @property
    def pid_file(self) -> Path:
        return self.workdir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def read_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def running_pid(self) -> int | None:
        pid = self.read_pid()
        return pid if pid is not None and pid_alive(pid, self.marker) else None

    def start(self) -> int:
        """Start detached; the pid file is written before this returns."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log_out:
            proc = subprocess.Popen(  # noqa: S603 - argv is built by the devnet, never by input
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log_out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=dict(self.env) if self.env is not None else None,
                start_new_session=True,
                user=self.user,
                group=self.group,
            )
        # Nobody waits on this Popen: the pid file is the handle. Marking it collected keeps
        # Popen.__del__ from warning; pid_alive() reaps the zombie if the child dies.
        proc.returncode = 0
        self.pid_file.write_text(f"{proc.pid}\n")
        log.info("devnet_process_started", component=self.name, pid=proc.pid)
        return proc.pid

    async def wait_ready(self, pid: int, probe: Probe, timeout: float) -> None:
        """Poll ``probe`` until it answers; fail fast if the process exits, naming the log."""
        deadline = time.monotonic() + timeout
        while True:
            if await probe():
                return
            # Our own child: only its exit counts. Its command line (the marker check against
            # pid reuse) reads empty while a wrapper (node's .bin/anvil, litecoind's shell
            # script) execs the real binary, which is not an exit.
            if not process_running(pid):
                raise DevnetError(
                    f"{self.name} exited during startup; see {self._logs()}\n{self._log_tail()}"
                )
            if time.monotonic() > deadline:
                raise DevnetError(
                    f"{self.name} did not answer within {timeout:.0f}s; see {self._logs()}"
                )
            await asyncio.sleep(_POLL_SECONDS)

    async def stop(self, timeout: float) -> bool:
        """Stop the group (signal, then SIGKILL after ``timeout``); True if something ran."""
        pid = self.read_pid()
        stopped = False
        if pid is not None:
            if pid_alive(pid, self.marker):
                stopped = True
                self._signal_group(pid, self.stop_signal)
                if not await self._wait_gone(pid, timeout):
                    log.warning("devnet_process_killed", component=self.name, pid=pid)
                    self._signal_group(pid, signal.SIGKILL)
                    await self._wait_gone(pid, timeout)
            stopped = self._kill_orphans(pid) or stopped
        self.pid_file.unlink(missing_ok=True)
        return stopped

    def clean_stale(self) -> None:
        """Remove a pid file whose process died, killing any orphan left in its group."""
        pid = self.read_pid()
        if pid is None or pid_alive(pid, self.marker):
            return
        self._kill_orphans(pid)
        self.pid_file.unlink(missing_ok=True)
        log.info("devnet_stale_pid_removed", component=self.name, pid=pid)

    async def ensure_running(self, probe: Probe, timeout: float) -> tuple[int, bool]:
        """(pid, reused): reuse a live, answering process; else clean up and start afresh."""
        pid = self.running_pid()
        if pid is not None:
            if await probe():
                log.info("devnet_process_reused", component=self.name, pid=pid)
                return pid, True
            # Alive but deaf (hung, or still starting from another `up`): give it one deadline.
            try:
                await self.wait_ready(pid, probe, timeout)
                return pid, True
            except DevnetError:
                await self.stop(timeout)
        self.clean_stale()
        await self.check_ports()
        pid = self.start()
        await self.wait_ready(pid, probe, timeout)
        return pid, False

    async def check_ports(self, grace: float = _PORT_GRACE) -> None:
        """Refuse to start when another program holds one of our ports. An orphan of ours that
        ``clean_stale`` just killed may hold one for a moment more: that is waited out."""
        deadline = time.monotonic() + grace
        for port in self.ports:
            while True:
                free = port_free(LOCALHOST, port)
                if free or time.monotonic() >= deadline:
                    break
                await asyncio.sleep(_POLL_SECONDS)
            if not free:
                owner = port_owner(port)
                hint = (
                    f"stop it (`chaingate devnet down --root {owner.devnet_root}`)"
                    if owner.devnet_root is not None
                    else "stop it"
                )
                raise DevnetError(
                    f"{self.name} cannot start: {owner.describe()}",
                    hint=f"{hint}, or run this devnet on other ports "
                    "(`chaingate devnet up --root DIR` with ports in DIR/config.json)",
                )

    def _kill_orphans(self, pgid: int) -> bool:
        orphans = group_members(pgid, self.marker)
        for orphan in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(orphan, signal.SIGKILL)
            log.warning("devnet_orphan_killed", component=self.name, pid=orphan)
        return bool(orphans)

    def _signal_group(self, pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)

    async def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid, self.marker) and not group_members(pid, self.marker):
                return True
            await asyncio.sleep(_POLL_SECONDS)
        return False

    def _logs(self) -> str:
        hint = f" and {self.extra_log_hint}" if self.extra_log_hint else ""
        return f"{self.log_file}{hint}"

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-_LOG_TAIL_CHARS:]
        except FileNotFoundError:
            return ""
