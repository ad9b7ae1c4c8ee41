"""One network's tasks under supervision: a failure there never stops another network, the API
or the dispatcher (SPEC section 5). A task that crashes (a decoder bug, data nobody foresaw) is
logged with its network and restarted with capped exponential backoff; a reorg deeper than the
stored window halts that network only, for an operator. Readiness shows each network's state.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass

import structlog
from prometheus_client import CollectorRegistry, Counter

from chaingate.errors import ReorgTooDeepError

log = structlog.get_logger(__name__)
# A run that lasted this long was healthy: the next crash starts the backoff from the bottom.
_HEALTHY_RUN = 60.0


@dataclass
class TaskStatus:
    """What /readyz shows for one supervised task (mutable: the supervisor updates it)."""

    state: str = "starting"  # starting | running | restarting | halted | stopped
    restarts: int = 0
    last_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.state != "halted"

    def details(self) -> dict[str, object]:
        return {"state": self.state, "restarts": self.restarts, "last_error": self.last_error}


class SupervisorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.restarts = Counter(
            "chaingate_task_restarts",
            "Supervised per-network tasks restarted after a crash",
            ["network", "task"],
            registry=registry if registry is not None else CollectorRegistry(),
        )


async def supervise(
    network: str,
    task: str,
    run: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    status: TaskStatus,
    *,
    metrics: SupervisorMetrics | None = None,
    base: float = 1.0,
    cap: float = 60.0,
) -> None:
    """Run ``run()`` until ``stop``; restart it when it crashes, never letting it raise."""
    metrics = metrics or SupervisorMetrics()
    failures = 0
    while not stop.is_set():
        status.state = "running"
        started = time.monotonic()
        try:
            await run()
        except ReorgTooDeepError as exc:
            status.state, status.last_error = "halted", str(exc)
            log.critical("watcher_halted", network=network, task=task, error=str(exc))
            return
        except Exception as exc:  # the point: contain whatever broke, in this network only
            failures = 1 if time.monotonic() - started > _HEALTHY_RUN else failures + 1
            delay = min(cap, base * 2 ** (failures - 1)) * random.uniform(0.8, 1.2)
            status.state = "restarting"
            status.restarts += 1
            status.last_error = f"{type(exc).__name__}: {exc}"[:300]
            metrics.restarts.labels(network, task).inc()
            log.error(
                "network_task_crashed",
                network=network,
                task=task,
                error_type=type(exc).__name__,
                restarts=status.restarts,
                retry_in_s=round(delay, 2),
                exc_info=True,
            )
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            continue
        if not stop.is_set():  # returned on its own: run it again (after a breath)
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=base)
    status.state = "stopped"
