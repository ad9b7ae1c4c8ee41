"""What `make bench` is doing right now: which measurement (n of N), its phase, how long so far.

Each measurement names its phases with ``phase("filling 2000 blocks")``; while a phase runs, a
heartbeat line repeats every ``every`` seconds, so a long run never looks hung. Lines go to stderr
(stdout carries the report table).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import TextIO

_CURRENT: ContextVar[Measurement | None] = ContextVar("bench_measurement", default=None)


class Measurement:
    def __init__(self, index: int, total: int, name: str, out: TextIO) -> None:
        self.label = f"[bench {index}/{total} {name}]"
        self.out = out
        self.started = time.perf_counter()
        self.phase = "starting"

    def say(self, text: str) -> None:
        elapsed = time.perf_counter() - self.started
        print(f"{self.label} {elapsed:5.0f} s  {text}", file=self.out, flush=True)


def phase(text: str) -> None:
    """The running measurement enters a new phase (a no-op outside `make bench`)."""
    current = _CURRENT.get()
    if current is not None:
        current.phase = text
        current.say(text)


@contextlib.asynccontextmanager
async def measuring(
    index: int, total: int, name: str, every: float = 15.0, out: TextIO = sys.stderr
) -> AsyncIterator[Measurement]:
    current = Measurement(index, total, name, out)
    token = _CURRENT.set(current)
    current.say("started")

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(every)
            current.say(f"still {current.phase}")

    beat = asyncio.create_task(heartbeat())
    try:
        yield current
    finally:
        beat.cancel()
        _CURRENT.reset(token)
