"""Is a devnet port free, and if not, who holds it (so the error can say what to stop).

A port held by another program is found before a node is started: otherwise the new node dies on
"address in use" while the readiness probe happily talks to the other one, and the devnet would
record a process that is not running as its own.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from dataclasses import dataclass
from pathlib import Path

_LISTEN = "0A"  # TCP state code in /proc/net/tcp


@dataclass(frozen=True)
class PortOwner:
    """The process listening on a port, as far as /proc tells (None fields: not visible)."""

    port: int
    pid: int | None = None
    program: str | None = None
    devnet_root: Path | None = None  # the other devnet's folder, when it is one

    def describe(self) -> str:
        if self.pid is None:
            return f"port {self.port} is already taken by another program"
        who = f"{self.program or 'a process'} (pid {self.pid})"
        if self.devnet_root is not None:
            return f"port {self.port} is already taken by another devnet's {who} under {self.devnet_root}"
        return f"port {self.port} is already taken by {who}"


def port_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port`` (connections in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def port_owner(port: int) -> PortOwner:
    """Who listens on ``port``: the socket's inode from /proc/net/tcp*, then the process whose
    file descriptors hold it, and the devnet folder it runs in (its working directory)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return PortOwner(port)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    target = fd.readlink().name
                    if target.startswith("socket:[") and target[8:-1] in inodes:
                        return _describe(port, int(proc.name), proc)
    return PortOwner(port)


def _listening_inodes(port: int) -> set[str]:
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == _LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                    found.add(inode)
    return found


def _describe(port: int, pid: int, proc: Path) -> PortOwner:
    program = None
    with contextlib.suppress(OSError, IndexError):
        program = Path(proc.joinpath("cmdline").read_bytes().split(b"\0")[0].decode()).name
    root = None
    with contextlib.suppress(OSError):
        cwd = proc.joinpath("cwd").resolve()
        # A devnet node runs in <root>/<component>; the root holds the devnet's state.json.
        for candidate in (cwd, *cwd.parents[:3]):
            if (candidate / "state.json").exists():
                root = candidate
                break
    return PortOwner(port, pid, program, root)
