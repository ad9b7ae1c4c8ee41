"""What `chaingate devnet status` reports, per component, and how it is decided."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from chaingate.devnet.processes import ManagedProcess, Probe

State = Literal["running", "stopped", "dead-pid", "not-answering", "external", "unavailable"]


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    state: State
    pid: int | None
    detail: str = ""


@dataclass(frozen=True)
class DevnetStatus:
    components: tuple[ComponentStatus, ...]

    def of(self, name: str) -> ComponentStatus:
        for component in self.components:
            if component.name == name:
                return component
        raise KeyError(name)

    @property
    def all_up(self) -> bool:
        """Every component runs and answers (an answering external database counts)."""
        return all(c.state in ("running", "external") for c in self.components)

    def lines(self) -> list[str]:
        """A plain table: one header line, one line per component."""
        rows = [("COMPONENT", "STATE", "PID", "DETAIL")]
        rows += [(c.name, c.state, str(c.pid or "-"), c.detail) for c in self.components]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        return [
            f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip()
            for r in rows
        ]


async def probe_component(name: str, proc: ManagedProcess, probe: Probe) -> ComponentStatus:
    """Running means both: the recorded pid is our live process AND the service answers."""
    pid = proc.read_pid()
    if pid is None:
        busy = await probe()
        detail = "something else answers on its port" if busy else ""
        return ComponentStatus(name, "stopped", None, detail)
    if proc.running_pid() is None:
        return ComponentStatus(name, "dead-pid", pid, f"stale pid file {proc.pid_file}")
    if not await probe():
        return ComponentStatus(name, "not-answering", pid, f"see {proc.log_file}")
    return ComponentStatus(name, "running", pid)
