"""JSON-RPC batches on one endpoint: cut to the endpoint's size, halve whatever it refuses.

A batch of one is sent as a plain request, so an endpoint that refuses batches altogether still
gets every call answered, and a call that is too large on its own (a log range) raises
``RequestTooLargeError`` to the caller instead of being split forever.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

import structlog

from chaingate.aio import gather_first_error
from chaingate.errors import RequestTooLargeError
from chaingate.providers.health import EndpointState
from chaingate.providers.jsonrpc import BatchRefusedError, make_request, unwrap_batch
from chaingate.providers.transport import HttpReply

log = structlog.get_logger(__name__)

T = TypeVar("T")

Call = tuple[str, Sequence[Any]]
Check = Callable[[Any], None]
SendFn = Callable[[EndpointState, str, Any], Awaitable[HttpReply]]
CallFn = Callable[[EndpointState, str, Sequence[Any], "Check | None"], Awaitable[Any]]


class BatchSender:
    def __init__(self, send: SendFn, call_on: CallFn, ids: Iterator[int]) -> None:
        self._send = send
        self._call_on = call_on
        self._ids = ids

    async def run(
        self, state: EndpointState, calls: Sequence[Call], checks: Sequence[Check | None]
    ) -> list[Any]:
        """Results of ``calls`` on ``state``'s endpoint, in request order."""
        limit = max(1, state.batch_limit)
        if len(calls) <= limit:
            return await self._send_batch(state, calls, checks)
        spans = [(i, min(i + limit, len(calls))) for i in range(0, len(calls), limit)]
        parts = await gather_first_error(
            [self._send_batch(state, calls[lo:hi], checks[lo:hi]) for lo, hi in spans]
        )
        return [result for part in parts for result in part]

    async def _send_batch(
        self, state: EndpointState, calls: Sequence[Call], checks: Sequence[Check | None]
    ) -> list[Any]:
        if len(calls) == 1:
            method, params = calls[0]
            return [await self._call_on(state, method, params, checks[0])]
        requests = [make_request(next(self._ids), method, params) for method, params in calls]
        reply = await self._send(state, state.endpoint.url, requests)
        try:
            results = unwrap_batch(state.endpoint, reply, requests)
        except RequestTooLargeError as exc:
            half = len(calls) // 2
            if isinstance(exc, BatchRefusedError):
                # Remember the endpoint's real cap so later batches are not refused again.
                state.batch_limit = min(state.batch_limit, half)
            log.info(
                "batch_split",
                endpoint=state.endpoint.name,
                size=len(calls),
                whole_batch_refused=isinstance(exc, BatchRefusedError),
            )
            # Halves go through run() so they are cut to the cap learned just now.
            left = await self.run(state, calls[:half], checks[:half])
            right = await self.run(state, calls[half:], checks[half:])
            return left + right
        for result, check in zip(results, checks, strict=True):
            if check is not None:
                check(result)
        return results
