"""Small asyncio helpers shared by the provider layer, the adapters and the dispatcher."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

T = TypeVar("T")


@asynccontextmanager
async def task_group() -> AsyncIterator[asyncio.TaskGroup]:
    """An ``asyncio.TaskGroup`` whose first failure is raised as itself, not wrapped in an
    ExceptionGroup, so that callers can classify it by type (a database that went away, an
    endpoint that failed). The other tasks are cancelled, as with any TaskGroup."""
    try:
        async with asyncio.TaskGroup() as group:
            yield group
    except BaseExceptionGroup as group_error:
        raise group_error.exceptions[0] from None


async def gather_first_error(coros: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """Run ``coros`` concurrently; the results in order, or the first failure itself."""
    async with task_group() as group:
        tasks = [group.create_task(coro) for coro in coros]
    return [task.result() for task in tasks]
